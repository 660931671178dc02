"""Who asks and whose plans wait: `pipeline.open_questions` / `approve_plan` and the FR's
own keys (`opus.conversation.policy`, pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opus.config import PipelineConfig
from opus.conversation.policy import (
    approval_required,
    assumptions,
    questions_before_plan,
)
from opus.domain import Job, JobState, Priority, Stage, StageRun
from opus.errors import ConfigError
from tests.conversation.design_notes import ALL_DECIDED, RATE_LIMITING

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _job(body: str = RATE_LIMITING, priority: Priority = Priority.MEDIUM, **spec: Any) -> Job:
    return Job(id=1, fr_id="FR-1", title="t", state=JobState.RUNNING, priority=priority,
               content_hash="h", fr_path=Path("FR-1.md"), repo=Path("."), base=None,
               created_at=NOW, updated_at=NOW, spec={"body": body, **spec})


def test_ask_is_the_default_and_asks_only_before_any_plan() -> None:
    pipeline = PipelineConfig()
    assert len(questions_before_plan(_job(), pipeline, [])) == 2
    plan = StageRun(1, Stage.PLAN, 0, True, {})
    assert questions_before_plan(_job(), pipeline, [plan]) == []
    answered = {"conversation": [{"asked_by": "fr", "questions": []}]}
    assert questions_before_plan(_job(**answered), pipeline, []) == []
    assert questions_before_plan(_job(ALL_DECIDED), pipeline, []) == []


def test_recommend_and_ignore_and_the_fr_key_wins() -> None:
    assert questions_before_plan(_job(open_questions="recommend"), PipelineConfig(), []) == []
    assert len(assumptions(_job(open_questions="recommend"), PipelineConfig())) == 2
    ignore = PipelineConfig(open_questions="ignore")
    assert questions_before_plan(_job(), ignore, []) == []
    assert assumptions(_job(), ignore) == []
    assert len(questions_before_plan(_job(open_questions="ask"), ignore, [])) == 2


def test_approve_plan_never_always_priorities_and_the_fr_key() -> None:
    assert not approval_required(_job(), PipelineConfig())
    assert approval_required(_job(), PipelineConfig(approve_plan="always"))
    listed = PipelineConfig(approve_plan=["critical", "high"])
    assert approval_required(_job(priority=Priority.HIGH), listed)
    assert not approval_required(_job(priority=Priority.LOW), listed)
    assert approval_required(_job(approve_plan=True), PipelineConfig())
    assert not approval_required(_job(approve_plan=False), PipelineConfig(approve_plan="always"))


def test_approve_plan_names_a_wrong_priority(tmp_path: Path) -> None:
    from opus.config import load_settings

    config = tmp_path / "opus.toml"
    config.write_text('[pipeline]\napprove_plan = ["urgent"]\n')
    with pytest.raises(ConfigError, match="urgent"):
        load_settings(config)


def test_the_fr_keys_are_read_and_checked() -> None:
    from opus.vault.note import InvalidNote, ParsedNote, read_note

    head = "---\nid: FR-1\ntitle: t\nstatus: planned\n"
    good = read_note(Path("FR-1.md"), (head + "open_questions: Recommend\napprove_plan: yes\n"
                                       "---\nBody\n").encode())
    assert isinstance(good, ParsedNote)
    assert (good.fr.open_questions, good.fr.approve_plan) == ("recommend", True)
    bad = read_note(Path("FR-1.md"), (head + "open_questions: maybe\n---\nBody\n").encode())
    assert isinstance(bad, InvalidNote) and "ask, recommend, ignore" in bad.error
