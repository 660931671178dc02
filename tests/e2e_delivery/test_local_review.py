"""The `local` provider end to end: the PR is a note in `05_review/`, and the human's
`decision:` in it drives the job (changes → a new round, approve → done)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opus.domain import JobState, Role
from opus.pipeline.executor import Outcome
from opus.vault.text import load_frontmatter, split_note
from tests.conftest import run_git
from tests.e2e_delivery.harness import GREET_V1, GREET_V2, Bench, make_bench


def _meta(text: str) -> dict[str, object]:
    meta = load_frontmatter(split_note(text))
    assert isinstance(meta, dict)
    return meta

ASK = "Please greet by name."


def _decide(bench: Bench, pr_note: Path, decision: str, review: str = "") -> None:
    """Edit the PR note as a human would, strictly after opus's last delivery."""
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None
    delivered = max(r.finished_at for r in bench.store.stage_runs(job.id) if r.finished_at)
    deadline = time.monotonic() + 2
    while datetime.now(UTC) <= delivered + timedelta(milliseconds=20):
        assert time.monotonic() < deadline, "the wall clock did not move"
        time.sleep(0.005)
    text = re.sub(
        r"^decision:.*$", f"decision: {decision}", pr_note.read_text(), count=1, flags=re.MULTILINE
    )
    if review:
        text = text.replace("## Your review\n", f"## Your review\n\n{review}\n", 1)
    pr_note.write_text(text)


def test_local_pr_note_round_trip(tmp_path: Path) -> None:
    bench = make_bench(tmp_path, rounds=(GREET_V1, GREET_V2))
    bench.write_fr()
    job = bench.enqueue()

    assert bench.work() == Outcome("awaiting_review", bench.store.get(job.id).pr_url or "")
    job = bench.store.get(job.id)
    pr_note = Path(job.pr_url or "")
    assert pr_note.parent == bench.vault / "10_features" / "05_review"
    meta = _meta(pr_note.read_text())
    assert (meta["pr_for"], meta["branch"], meta["state"]) == ("[[FR-1]]", job.branch, "open")
    assert bench.remote_head(job.branch or "") is not None
    pr_text = pr_note.read_text()
    bench.intake.tick()
    path, fr = bench.note()
    assert (path.parent.name, fr["status"], fr["pr"]) == ("05_review", "review", str(pr_note))
    assert pr_note.read_text() == pr_text  # intake leaves the PR note alone
    first_head = bench.remote_head(job.branch or "")

    _decide(bench, pr_note, "changes", ASK)
    assert bench.poll() == ["new_round"]
    assert bench.work() == Outcome("awaiting_review", str(pr_note))

    coder = [task for task in bench.engine.tasks if task.role is Role.CODER]
    assert len(coder) == 2 and ASK in coder[1].user_message
    agent_review = _agent_review(pr_text)
    assert agent_review and agent_review not in coder[1].user_message  # only the human's words
    new_head = bench.remote_head(job.branch or "")
    assert new_head != first_head
    run_git(bench.remote, "merge-base", "--is-ancestor", first_head or "", new_head or "")
    answered = pr_note.read_text()
    assert "### opus — round 2" in answered and "takes a name" in answered
    assert _meta(answered)["decision"] is None  # reset for the next look
    assert bench.poll() == []

    _decide(bench, pr_note, "approve")
    assert bench.poll() == ["done"]
    assert bench.store.get(job.id).state is JobState.DONE
    bench.intake.tick()
    path, fr = bench.note()
    assert (path.parent.name, fr["status"]) == ("06_done", "done")
    assert not (bench.ctx.settings.state_dir / "worktrees" / f"job-{job.id}").exists()


def _agent_review(text: str) -> str:
    found = re.search(r"^## Agent review\n\n(.+)$", text, re.MULTILINE)
    assert found is not None, text
    return found[1].strip()


def test_local_reject_cancels(tmp_path: Path) -> None:
    bench = make_bench(tmp_path)
    bench.write_fr()
    job = bench.enqueue()
    bench.work()
    _decide(bench, Path(bench.store.get(job.id).pr_url or ""), "reject")

    assert bench.poll() == ["cancelled"]
    bench.intake.tick()
    assert bench.note()[1]["status"] == "cancelled"


def test_a_retry_after_reject_is_not_cancelled_by_the_old_note(tmp_path: Path) -> None:
    from opus.control import retry

    bench = make_bench(tmp_path, rounds=(GREET_V1, GREET_V1))
    bench.write_fr()
    job = bench.enqueue()
    bench.work()
    old_note = Path(bench.store.get(job.id).pr_url or "")
    _decide(bench, old_note, "reject")
    assert bench.poll() == ["cancelled"]

    retry(bench.store, "FR-1")
    outcome = bench.work()
    job = bench.store.get(job.id)
    assert job.state is JobState.AWAITING_REVIEW, outcome
    assert bench.poll() == []  # the PR note is reopened and waits for a new decision
    assert bench.store.get(job.id).state is JobState.AWAITING_REVIEW


def test_deleting_the_local_pr_note_cancels(tmp_path: Path) -> None:
    bench = make_bench(tmp_path)
    bench.write_fr()
    job = bench.enqueue()
    bench.work()
    pr_note = Path(bench.store.get(job.id).pr_url or "")
    assert bench.poll() == []  # an open PR note: the job waits

    pr_note.unlink()

    assert bench.poll() == ["cancelled"]
    job = bench.store.get(job.id)
    assert (job.state, job.error) == (JobState.CANCELLED, "the PR note was deleted")
    bench.intake.tick()
    assert bench.note()[1]["status"] == "cancelled"
    assert not (bench.ctx.settings.state_dir / "worktrees" / f"job-{job.id}").exists()
