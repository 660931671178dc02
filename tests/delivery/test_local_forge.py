"""The `local` forge: the PR is a vault note; a human decides with `decision:`."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import frontmatter
import pytest

from opus.config import PRConfig
from opus.delivery.review_loop import decide
from opus.errors import ForgeError
from opus.forges import forge_for
from opus.forges.local import LocalForge
from opus.seams import PullRequest, ReviewComment

BRANCH = "opus/fr-61-add-rate-limiting"


@pytest.fixture
def forge(tmp_path: Path) -> LocalForge:
    made = forge_for(PRConfig(provider="local"), repo=tmp_path, remote="origin",
                     vault_root=tmp_path / "vault", token=None)
    assert isinstance(made, LocalForge)
    return made


def _open(forge: LocalForge) -> PullRequest:
    return forge.open_pr(branch=BRANCH, base="main", title="FR-61: Add rate limiting",
                         body="## Summary\n\nLimit requests.")


def _set(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def test_open_writes_the_note_and_find_returns_it(forge: LocalForge, tmp_path: Path) -> None:
    pr = _open(forge)
    path = tmp_path / "vault/10_features/05_review/PR-FR-61-fr-61-add-rate-limiting.md"
    assert pr.url == str(path) and pr.number == 1 and pr.state == "open"
    meta = frontmatter.loads(path.read_text()).metadata
    assert meta["pr_for"] == "FR-61" and meta["branch"] == BRANCH and meta["base"] == "main"
    assert meta["state"] == "open" and meta["decision"] is None and meta["number"] == 1
    assert "Limit requests." in path.read_text()
    assert LocalForge(tmp_path / "vault").find_pr(BRANCH) == pr  # a restart finds it
    assert forge.find_pr("opus/other") is None


def test_opening_twice_keeps_one_note(forge: LocalForge, tmp_path: Path) -> None:
    first = _open(forge)
    assert _open(forge) == first
    assert len(list((tmp_path / "vault").rglob("PR-*.md"))) == 1


@pytest.mark.parametrize(("value", "expected"), [("approve", "done"), ("reject", "cancelled"),
                                                 ("", "wait")])
def test_decision_maps_to_the_job_outcome(forge: LocalForge, value: str, expected: str) -> None:
    pr = _open(forge)
    _set(Path(pr.url), "decision:", f"decision: {value}")
    assert decide(forge.feedback(pr, None)) == expected


def test_changes_bring_the_review_section_and_comments(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    asked = "  - {path: src/a.py, line: 4, body: off by one}\n  - add a test"
    _set(path, "decision:", f"decision: changes\ncomments:\n{asked}")
    path.write_text(path.read_text() + "\nPlease cap at 100 requests per minute.\n")
    feedback = forge.feedback(pr, None)
    assert decide(feedback) == "new_round"
    assert feedback.summary == "Please cap at 100 requests per minute."
    assert feedback.comments == (
        ReviewComment(None, None, "Please cap at 100 requests per minute."),
        ReviewComment("src/a.py", 4, "off by one"),
        ReviewComment(None, None, "add a test"),
    )


def test_comment_appends_and_resets_the_decision(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: changes")
    forge.comment(pr, "### opus — round 2\n\nCapped at 100.")
    text = path.read_text()
    assert frontmatter.loads(text).metadata["decision"] is None
    assert text.rstrip().endswith("Capped at 100.") and "Limit requests." in text
    assert decide(forge.feedback(pr, None)) == "wait"


def test_an_old_changes_decision_does_not_start_a_second_round(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: changes")
    past = time.time() - 60
    os.utime(path, (past, past))
    assert decide(forge.feedback(pr, datetime.now(UTC) - timedelta(seconds=30))) == "wait"
    assert decide(forge.feedback(pr, datetime.now(UTC) - timedelta(seconds=90))) == "new_round"


def test_a_moved_note_is_still_found(forge: LocalForge, tmp_path: Path) -> None:
    pr = _open(forge)
    done = tmp_path / "vault/10_features/06_done"
    done.mkdir(parents=True)
    moved = done / Path(pr.url).name
    Path(pr.url).rename(moved)
    _set(moved, "decision:", "decision: approve")
    assert decide(forge.feedback(pr, None)) == "done"


def test_bad_notes_give_forge_errors_not_crashes(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: maybe")
    with pytest.raises(ForgeError, match="not one of approve, reject, changes"):
        forge.feedback(pr, None)
    _set(path, "decision: maybe", "decision: [unclosed")
    with pytest.raises(ForgeError, match="not valid YAML"):
        forge.feedback(pr, None)
    path.unlink()
    with pytest.raises(ForgeError, match="is gone"):
        forge.feedback(pr, None)
