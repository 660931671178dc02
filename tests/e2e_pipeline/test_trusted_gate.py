"""Issue 16's gate probes: a coder that rewrites `.opus.toml`, links it out of the
worktree, or makes it a FIFO, with its own bash commands in the real sandbox. The gate
keeps the base commit's test command, reads nothing outside, and nothing hangs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opus.config import PipelineConfig
from opus.domain import JobState, Stage
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import real_repos as rr
from tests.e2e_pipeline.harness import Project, run_fr
from tests.standins.messages_api import MessagesAPI, reply, tool_use

BASE_COMMAND = "python3 check_calc.py"
FILES = {
    "calc.py": talk.CALC,
    "check_calc.py": "from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('calc ok')\n",
    ".opus.toml": f'test_command = "{BASE_COMMAND}"\n',
}
BROKEN_ADD = "def add(a, b):\n    return a - b\n"


def _probe(kind: str, outside: Path) -> str:
    return {
        "rewritten": "printf 'test_command = \"true\"\\n' > .opus.toml",
        "symlinked": f"ln -sf {outside} .opus.toml",
        "fifo": "rm -f .opus.toml && mkfifo .opus.toml",
    }[kind]


def _bash(command: str) -> list[object]:
    return [reply(tool_use("bash", {"command": command}))]


@pytest.mark.parametrize("kind", ["rewritten", "symlinked", "fifo"])
def test_the_gate_uses_the_base_command_whatever_the_coder_does_to_the_config(
    api: MessagesAPI, tmp_path: Path, kind: str
) -> None:
    project = rr.make_project_with(tmp_path / "p", FILES)
    outside = tmp_path / "home" / "secret.toml"
    outside.parent.mkdir()
    outside.write_text('test_command = "echo LEAKED-FROM-OUTSIDE"\n')
    api.add(
        *talk.planner(),
        *_bash(_probe(kind, outside)),
        *talk.coder({"calc.py": BROKEN_ADD}, "Changed add."),
    )  # fmt: skip
    rr.write_note(project, "FR-41", "Change add", "Change add.")
    settings = project.settings()
    settings = settings.model_copy(update={"pipeline": PipelineConfig(
        **{**settings.pipeline.model_dump(), "max_iterations": 1})})

    started = time.monotonic()
    run = run_fr(project, settings)
    elapsed = time.monotonic() - started
    print(f"{kind}: job ended in {elapsed:.1f}s")

    assert elapsed < 120, "the run hung"
    assert run.job.state is JobState.FAILED
    (test,) = [r for r in run.ctx.store.stage_runs(run.job.id) if r.stage is Stage.TEST]
    assert test.output["command"] == BASE_COMMAND
    assert test.output["passed"] is False
    assert "LEAKED" not in repr(run.ctx.store.stage_runs(run.job.id))
    assert "LEAKED" not in (run.job.error or "")
    assert test.output["config_changed"] is True


def test_a_config_change_is_told_to_the_reviewer_and_in_the_pr(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project: Project = rr.make_project_with(tmp_path, FILES)
    api.add(
        *talk.planner(),
        *_bash(_probe("rewritten", tmp_path)),
        *talk.coder({"calc.py": talk.CALC_WITH_SUB}, "Added sub."),
        *talk.approve(),
    )  # fmt: skip
    rr.write_note(project, "FR-42", "Add sub", "Add sub.")

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "awaiting_review", run.job.error
    (first,) = talk.first_messages(api, "reviewer")
    assert "modifies `.opus.toml`" in first
    (note,) = list((project.vault / "10_features" / "05_review").glob("PR-*.md"))
    body = note.read_text()
    assert "## Attention" in body and "modifies `.opus.toml`" in body
