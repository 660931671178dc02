"""The human gate on GitHub and Gitea: merged → done, closed → cancelled, changes
requested → a new round on the same branch and PR, within the round cap; past it, the PR
goes back to the person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.domain import Job, JobState, Role
from opus.pipeline.executor import Outcome
from opus.testing.clock import FakeClock
from opus.testing.notifier import RecordingNotifier
from tests.conftest import run_git
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import GREET_V1, GREET_V2, Bench, code, make_bench, stamp
from tests.standins.forge import ForgeStandin

ASK = "Greet by name."
COMMENT = ("src/app.py", 1, "take a name argument")


@dataclass
class Delivered:
    bench: Bench
    clock: FakeClock
    job: Job
    head: str
    """The branch's sha on the remote after the first delivery."""


def _deliver(tmp_path: Path, forge: ForgeStandin, *, max_iterations: int = 3) -> Delivered:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    bench = make_bench(
        tmp_path, pr=forge_config(forge), clock=clock, max_iterations=max_iterations,
        rounds=(GREET_V1, GREET_V2),
    )  # fmt: skip
    bench.write_fr()
    job = bench.enqueue()
    assert bench.work() == Outcome("awaiting_review", forge.pr_json(forge.prs[1])["html_url"])
    bench.intake.tick()
    job = bench.store.get(job.id)
    head = bench.remote_head(job.branch or "")
    assert head is not None
    return Delivered(bench, clock, job, head)


def _request_changes(d: Delivered, forge: ForgeStandin) -> None:
    """A human asks for changes a minute after delivery; opus polls a minute later."""
    d.clock.advance(60)
    verdict = "CHANGES_REQUESTED" if forge.flavor == "github" else "REQUEST_CHANGES"
    forge.review(1, verdict, body=ASK, comments=(COMMENT,), at=stamp(d.clock.now()))
    d.clock.advance(60)


def _worktree(d: Delivered) -> Path:
    return d.bench.ctx.settings.state_dir / "worktrees" / f"job-{d.job.id}"


def test_merged_pr_makes_the_job_and_the_note_done(tmp_path: Path, forge: ForgeStandin) -> None:
    d = _deliver(tmp_path, forge)
    path, meta = d.bench.note()
    assert (path.parent.name, meta["status"], meta["pr"]) == ("05_review", "review", d.job.pr_url)
    assert _worktree(d).is_dir()
    assert d.bench.poll() == []  # nobody looked at it yet

    forge.merge(1)

    assert d.bench.poll() == ["done"]
    assert d.bench.store.get(d.job.id).state is JobState.DONE
    d.bench.intake.tick()
    path, meta = d.bench.note()
    assert (path.parent.name, meta["status"]) == ("06_done", "done")
    assert not _worktree(d).exists()
    branch = d.job.branch or ""
    assert run_git(d.bench.repo, "branch", "--list", branch) == ""  # local state cleaned
    assert run_git(d.bench.remote, "for-each-ref", "refs/opus/wip") == ""
    assert d.bench.remote_head(branch) == d.head  # the forge's copy is the human's to delete
    assert forge.unexpected == []


def test_closed_pr_cancels_the_job(tmp_path: Path, forge: ForgeStandin) -> None:
    d = _deliver(tmp_path, forge)

    forge.close(1)

    assert d.bench.poll() == ["cancelled"]
    job = d.bench.store.get(d.job.id)
    assert job.state is JobState.CANCELLED
    d.bench.intake.tick()
    _path, meta = d.bench.note()
    assert meta["status"] == "cancelled"
    assert "closed without merge" in meta["error"]
    assert not _worktree(d).exists()
    assert d.bench.remote_head(d.job.branch or "") == d.head  # the branch stays for the human
    assert run_git(d.bench.repo, "rev-parse", d.job.branch or "") == d.head


def test_changes_requested_run_a_new_round_on_the_same_pr(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    d = _deliver(tmp_path, forge)
    _request_changes(d, forge)

    assert d.bench.poll() == ["new_round"]
    queued = d.bench.store.get(d.job.id)
    assert queued.state is JobState.QUEUED
    d.bench.intake.tick()
    assert d.bench.note()[1]["status"] == "in-progress"

    outcome = d.bench.work()

    assert outcome == Outcome("awaiting_review", d.job.pr_url or "")
    coder = [task for task in d.bench.engine.tasks if task.role is Role.CODER]
    assert len(coder) == 2
    assert (
        ASK in coder[1].user_message
        and "src/app.py:1: take a name argument" in coder[1].user_message
    )
    # New commits on the same branch, on top of the delivered ones; still one PR.
    new_head = d.bench.remote_head(d.job.branch or "")
    assert new_head != d.head
    run_git(d.bench.remote, "merge-base", "--is-ancestor", d.head, new_head or "")
    assert "name: str" in run_git(d.bench.remote, "show", f"{new_head}:src/app.py")
    assert [r.status for r in forge.posts("/pulls")] == [201]
    said = [c["body"] for c in forge.prs[1].issue_comments]
    assert len(said) == 1 and "round 2" in said[0] and "takes a name" in said[0]
    # The same review does not start a third round; the merge then ends it.
    d.clock.advance(60)
    assert d.bench.poll() == []
    forge.merge(1)
    assert d.bench.poll() == ["done"]
    assert forge.unexpected == []


def _sent(d: Delivered) -> list[tuple[str, str]]:
    notifier = d.bench.ctx.notifier
    assert isinstance(notifier, RecordingNotifier)
    return [(kind, title) for kind, title, _body in notifier.sent]


def _comments(forge: ForgeStandin) -> list[str]:
    return [str(c["body"]) for c in forge.prs[1].issue_comments]


def test_past_the_round_cap_a_change_request_hands_the_pr_back(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    """No round left: nothing runs, the job stays delivered with its PR open, the person
    hears once that opus stopped (notification, PR comment, the note's `error:`), and
    opus acts on no further change request; an approval settles it."""
    d = _deliver(tmp_path, forge, max_iterations=1)
    forge.remote = d.bench.remote
    d.bench.ctx.notifier = RecordingNotifier()
    _request_changes(d, forge)

    assert d.bench.poll() == ["escalated"]

    job = d.bench.store.get(d.job.id)
    assert job.state is JobState.AWAITING_REVIEW
    assert (job.error or "").startswith("Changes requested on PR 1 — needs you")
    assert _sent(d) == [("needs_you", "Changes requested on PR 1 (FR-1) — needs you")]
    said = _comments(forge)
    assert len(said) == 1 and "stopped after round 1" in said[0] and d.head[:10] in said[0]
    assert len([t for t in d.bench.engine.tasks if t.role is Role.CODER]) == 1
    assert d.bench.remote_head(d.job.branch or "") == d.head
    d.bench.intake.tick()
    meta = d.bench.note()[1]
    assert meta["status"] == "review" and "needs you" in str(meta["error"])

    _request_changes(d, forge)  # asked again: the PR is the person's now
    assert d.bench.poll() == []
    assert len(_sent(d)) == 1 and len(_comments(forge)) == 1
    forge.review(1, "APPROVED", reviewer="bob", body="Fixed it myself.")
    forge.review(1, "APPROVED", body="OK now.")
    assert d.bench.poll() == ["ready"]
    assert d.bench.store.get(d.job.id).error is None
    assert forge.unexpected == []


@pytest.mark.parametrize("forge", ["gitea"], indirect=True)
def test_a_review_round_out_of_rounds_hands_the_pr_back_clean(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    """The round a change request started cannot pass its own tests within the cap: the
    job is not failed; nothing is pushed and the worktree is back at the pushed head."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    breaks = code("raise SystemExit('greet() is broken')\n", path="check.py")
    bench = make_bench(tmp_path, pr=forge_config(forge), clock=clock, max_iterations=2,
                       rounds=(GREET_V1, breaks))  # fmt: skip
    bench.write_fr()
    job = bench.enqueue()
    assert bench.work() == Outcome("awaiting_review", forge.pr_json(forge.prs[1])["html_url"])
    job = bench.store.get(job.id)
    d = Delivered(bench, clock, job, bench.remote_head(job.branch or "") or "")
    bench.ctx.notifier = RecordingNotifier()
    _request_changes(d, forge)
    assert bench.poll() == ["new_round"]

    outcome = bench.work()

    assert isinstance(outcome, Outcome) and outcome.kind == "escalated"
    job = bench.store.get(job.id)
    assert job.state is JobState.AWAITING_REVIEW and job.iteration == 2
    assert bench.remote_head(job.branch or "") == d.head
    wt = _worktree(d)
    assert run_git(wt, "rev-parse", "HEAD") == d.head
    assert run_git(wt, "status", "--porcelain") == ""
    handed = [r for r in bench.store.stage_runs(job.id) if r.stage.value == "deliver"][-1]
    assert handed.output["handed_back"] == "review" and handed.commit == d.head
    attempt = str(handed.output["attempt"])
    assert attempt and attempt != d.head  # the failed attempt, not pushed to the branch
    assert _sent(d) == [("needs_you", "Changes requested on PR 1 (FR-1) — needs you")]
    said = _comments(forge)
    assert len(said) == 1 and "stopped after round 2" in said[0]
    assert attempt[:10] in said[0] and "greet() is broken" in said[0]
    bench.intake.tick()
    assert bench.note()[1]["status"] == "review"
    assert bench.poll() == []  # the change request was handled: no round, no message
    assert len(_sent(d)) == 1


@pytest.mark.parametrize("forge", ["gitea"], indirect=True)
def test_a_new_round_builds_on_a_humans_commit(tmp_path: Path, forge: ForgeStandin) -> None:
    d = _deliver(tmp_path, forge)
    # A human pushes a fix of their own to the PR branch, then asks for more changes.
    clone = tmp_path / "human"
    run_git(tmp_path, "clone", "-q", "-b", d.job.branch or "", str(d.bench.remote), str(clone))
    (clone / "NOTES.md").write_text("human notes\n")
    run_git(clone, "add", "NOTES.md")
    run_git(clone, "commit", "-q", "-m", "human notes")
    run_git(clone, "push", "-q", "origin", d.job.branch or "")
    theirs = run_git(clone, "rev-parse", "HEAD")
    _request_changes(d, forge)
    assert d.bench.poll() == ["new_round"]

    outcome = d.bench.work()

    assert isinstance(outcome, Outcome) and outcome.kind == "awaiting_review"
    head = d.bench.remote_head(d.job.branch or "")
    assert head != theirs
    # The new round's commits sit on top of the human's: nothing of theirs was replaced.
    run_git(clone, "fetch", "-q", "origin", d.job.branch or "")
    run_git(clone, "merge-base", "--is-ancestor", theirs, "FETCH_HEAD")
    assert run_git(clone, "show", "FETCH_HEAD:NOTES.md") == "human notes"


@pytest.mark.parametrize("forge", ["gitea"], indirect=True)
def test_a_new_round_never_overwrites_a_rewritten_branch(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    d = _deliver(tmp_path, forge)
    # A human replaces the PR branch with history that does not contain opus's commits.
    clone = tmp_path / "human"
    run_git(tmp_path, "clone", "-q", "-b", d.job.branch or "", str(d.bench.remote), str(clone))
    run_git(clone, "reset", "-q", "--hard", "HEAD~1")
    (clone / "NOTES.md").write_text("human notes\n")
    run_git(clone, "add", "NOTES.md")
    run_git(clone, "commit", "-q", "-m", "human notes")
    run_git(clone, "push", "-q", "--force", "origin", d.job.branch or "")
    theirs = run_git(clone, "rev-parse", "HEAD")
    _request_changes(d, forge)
    assert d.bench.poll() == ["new_round"]

    outcome = d.bench.work()

    assert isinstance(outcome, Outcome) and outcome.kind == "failed"
    error = d.bench.store.get(d.job.id).error or ""
    assert "has commits opus did not make" in error and "'human notes' by Test User" in error
    assert d.bench.remote_head(d.job.branch or "") == theirs
