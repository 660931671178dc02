"""Failing CI on an open PR, on the GitHub and Gitea stand-ins with real git: a round per
failing head commit within `pr.ci_rounds` and the round cap, then one "needs you"; an
approved, green PR is announced ready to merge once.

The stand-in's CI is a policy run the first time a commit's checks are read: it looks at
`src/app.py` in the pushed commit (the bare remote), as a CI job would.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.daemon.logs import log_path
from opus.daemon.review_poll import poll_reviews
from opus.domain import JobState, Role
from opus.pipeline.executor import Outcome
from opus.status import status_report
from opus.testing.clock import FakeClock
from opus.testing.engine import Round
from opus.testing.notifier import RecordingNotifier
from tests.conftest import run_git
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import (
    GREET_V1,
    GREET_V2,
    TOKEN_ENV,
    Bench,
    code,
    make_bench,
)
from tests.standins.ci import Kind, StandinCheck
from tests.standins.forge import ForgeStandin
from tests.standins.protection import Rule

ESC = "\x1b"
LOG = (
    "2026-01-01T00:00:01.0000000Z \x1b[36;1mpython3 -m pytest -q\x1b[0m\n"
    "2026-01-01T00:00:02.0000000Z F\n"
    "2026-01-01T00:00:02.1000000Z \x1b[31mE   AssertionError: greet() must take a name\x1b[0m\n"
    "2026-01-01T00:00:02.2000000Z ##[error]Process completed with exit code 1.\n"
)


def _app_at(remote: Path, sha: str) -> str:
    found = subprocess.run(["git", "show", f"{sha}:src/app.py"], cwd=remote,
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout


def needs_a_name(remote: Path, flavor: str) -> Callable[[str], list[StandinCheck]]:
    """CI that fails while greet() takes no name: a GitHub Actions job with annotations
    and a log, or a Gitea commit status."""

    def policy(sha: str) -> list[StandinCheck]:
        ok = "name" in _app_at(remote, sha)
        if flavor == "gitea":
            return [StandinCheck("ci/test", "success" if ok else "failure", kind="status",
                                 summary="" if ok else "greet() must take a name")]
        if ok:
            return [StandinCheck("test", "success", log="ok\n"), StandinCheck("lint")]
        return [
            StandinCheck("test", "failure", title="1 test failed",
                         summary="tests/test_app.py::test_greet failed",
                         annotations=[("src/app.py", 1, "greet() takes no name")], log=LOG),
            StandinCheck("lint"),
        ]  # fmt: skip

    return policy


def _bench(
    tmp_path: Path,
    forge: ForgeStandin,
    *,
    rounds: Sequence[Round] = (GREET_V1, GREET_V2),
    max_iterations: int = 3,
    **pr: object,
) -> Bench:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    config = forge_config(forge).model_copy(update=pr)
    bench = make_bench(tmp_path, pr=config, clock=clock, max_iterations=max_iterations,
                       rounds=rounds)  # fmt: skip
    forge.remote = bench.remote
    forge.ci.policy = needs_a_name(bench.remote, forge.flavor)
    bench.ctx.notifier = RecordingNotifier()
    bench.write_fr()
    bench.enqueue()
    assert isinstance(bench.work(), Outcome)
    return bench


def _notes(bench: Bench) -> RecordingNotifier:
    notifier = bench.ctx.notifier
    assert isinstance(notifier, RecordingNotifier)
    return notifier


def _approve(forge: ForgeStandin) -> None:
    forge.review(1, "APPROVED", body="LGTM")


def _coder_messages(bench: Bench) -> list[str]:
    return [task.user_message for task in bench.engine.tasks if task.role is Role.CODER]


def test_ci_failing_once_costs_one_round_then_the_pr_is_ready(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    bench = _bench(tmp_path, forge)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None and job.state is JobState.AWAITING_REVIEW
    failing = bench.remote_head(job.branch or "")
    assert failing is not None

    assert bench.poll() == ["new_round"]
    assert bench.poll() == []  # the round is queued: nothing to react to meanwhile
    events = [e for e in bench.store.events(job.id) if e.kind == "ci_round"]
    assert len(events) == 1 and failing[:10] in events[0].message
    check = "test (failure)" if forge.flavor == "github" else "ci/test (failure)"
    assert check in events[0].message
    logged = log_path(bench.ctx.settings.state_dir, job.id).read_text()
    assert f"PR: round 2 on {job.pr_url} for {failing[:10]}: {check}" in logged

    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")
    told = _coder_messages(bench)[-1]
    if forge.flavor == "github":
        assert "E   AssertionError: greet() must take a name" in told  # the log tail
        assert "src/app.py:1: greet() takes no name" in told  # the annotation
        assert "1 test failed" in told and ESC not in told and "00:00:02" not in told
        assert forge.ci.log_host.unexpected == [] and len(forge.ci.log_host.requests) == 1
    else:
        assert "greet() must take a name" in told
    assert len(forge.prs) == 1
    comments = [c["body"] for c in forge.prs[1].issue_comments]
    assert any(f"Fixes: CI failed on {failing[:10]}: {check}" in c for c in comments)

    assert bench.poll() == []  # green now, but nobody approved yet
    _approve(forge)
    assert bench.poll() == ["ready"]
    assert bench.poll() == []
    ready = [n for n in _notes(bench).sent if n[0] == "ready"]
    assert [title for _kind, title, _body in ready] == ["PR 1 (FR-1) is ready to merge"]
    bench.intake.tick()
    _path, meta = bench.note()
    assert (meta["status"], meta["stage"]) == ("review", "ready")
    rounds = [r for r in bench.store.stage_runs(job.id) if r.stage.value == "code"]
    assert len(rounds) == 2  # one extra round, no more
    assert forge.unexpected == []


def test_ci_failing_every_time_escalates_once_after_ci_rounds(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    tries = tuple(code(f"def greet() -> str:\n    return 'hi {n}'\n") for n in range(5))
    bench = _bench(tmp_path, forge, rounds=tries, max_iterations=5, ci_rounds=2)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None

    for _ in range(2):
        assert bench.poll() == ["new_round"]
        assert bench.work() == Outcome("awaiting_review", job.pr_url or "")
    spent = len(bench.engine.tasks)
    assert bench.poll() == ["escalated"]
    for _ in range(3):
        assert bench.poll() == []
    assert len(bench.engine.tasks) == spent  # no tokens while it waits for a person

    sent = _notes(bench).sent
    assert [title for kind, title, _ in sent if kind == "needs_you"] == [
        "CI still failing on PR 1 (FR-1) — needs you"]
    job = bench.store.get(job.id)
    assert job.state is JobState.AWAITING_REVIEW and job.iteration == 3
    bench.intake.tick()
    _path, meta = bench.note()
    assert meta["status"] == "review"
    assert str(meta["error"]).startswith("CI still failing on PR 1 — needs you")
    rows = status_report(bench.store, bench.ctx.settings, bench.ctx.clock.now()).jobs
    assert rows[0].error is not None and "CI still failing on PR 1" in rows[0].error

    # A person fixes the branch: CI turns green, the escalation clears, approval → ready.
    forge.ci.set(bench.remote_head(job.branch or "") or "", [StandinCheck("test")])
    _approve(forge)
    assert bench.poll() == ["ready"]
    assert bench.store.get(job.id).error is None


def test_a_ci_round_builds_on_what_a_person_pushed_meanwhile(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    bench = _bench(tmp_path, forge)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None and job.branch
    assert bench.poll() == ["new_round"]

    clone = tmp_path / "human"
    run_git(tmp_path, "clone", "-q", "-b", job.branch, str(bench.remote), str(clone))
    (clone / "NOTES.md").write_text("why greet() changes\n")
    run_git(clone, "add", "NOTES.md")
    run_git(clone, "-c", "user.name=Ann", "-c", "user.email=ann@example.com",
            "commit", "-qm", "Notes on greet()")  # fmt: skip
    run_git(clone, "push", "-q", "origin", job.branch)
    human = run_git(clone, "rev-parse", "HEAD")

    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")
    head = bench.remote_head(job.branch) or ""
    run_git(bench.remote, "merge-base", "--is-ancestor", human, head)  # kept, not replaced
    assert "name" in _app_at(bench.remote, head) and len(forge.prs) == 1


def test_a_round_that_changes_nothing_never_runs_twice_for_the_same_head(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    same = code("def greet() -> str:\n    return 'hi'\n")
    bench = _bench(tmp_path, forge, rounds=(same, same, same), max_iterations=5)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None
    head = bench.remote_head(job.branch or "")

    assert bench.poll() == ["new_round"]
    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")
    assert bench.remote_head(job.branch or "") == head  # nothing new was pushed
    assert bench.poll() == ["escalated"]
    assert bench.poll() == []
    rounds = [e for e in bench.store.events(job.id) if e.kind == "ci_round"]
    assert len(rounds) == 1
    assert "did not change it" in (bench.store.get(job.id).error or "")


def test_a_ci_round_out_of_rounds_hands_the_pr_back_instead_of_failing(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    failing_test = code("raise SystemExit('greet() is broken')\n", path="check.py")
    bench = _bench(tmp_path, forge, rounds=(GREET_V1, failing_test), max_iterations=2)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None

    pushed = bench.remote_head(job.branch or "")
    assert bench.poll() == ["new_round"]
    outcome = bench.work()
    assert isinstance(outcome, Outcome) and outcome.kind == "escalated"
    job = bench.store.get(job.id)
    assert job.state is JobState.AWAITING_REVIEW
    assert (job.error or "").startswith("CI still failing on PR 1 — needs you")
    assert [kind for kind, _t, _b in _notes(bench).sent] == ["needs_you"]
    assert bench.poll() == []  # the escalation stands: no round, no second notification
    assert len(_notes(bench).sent) == 1
    # Clean and honest: nothing pushed, the worktree at the pushed head, the PR told.
    assert bench.remote_head(job.branch or "") == pushed
    wt = bench.ctx.settings.state_dir / "worktrees" / f"job-{job.id}"
    assert run_git(wt, "rev-parse", "HEAD") == pushed
    assert run_git(wt, "status", "--porcelain") == ""
    said = [c["body"] for c in forge.prs[1].issue_comments]
    assert len(said) == 1 and "stopped after round 2" in said[0]
    assert "greet() is broken" in said[0] and forge.unexpected == []


def _with_coverage(policy: Callable[[str], list[StandinCheck]], flavor: str
                   ) -> Callable[[str], list[StandinCheck]]:
    """The same CI plus a coverage upload that fails on every commit."""
    kind: Kind = "run" if flavor == "github" else "status"
    return lambda sha: [*policy(sha), StandinCheck("coverage/upload", "failure", kind=kind,
                                                   summary="upload timed out")]


def _required(forge: ForgeStandin) -> None:
    """The base branch's protection requires the tests alone."""
    forge.rules.protect("main", Rule(contexts=["test" if forge.flavor == "github" else "ci/*"]))


@pytest.mark.parametrize("how", ["protection", "config"])
def test_a_failing_check_that_is_not_required_starts_no_round(
    tmp_path: Path, forge: ForgeStandin, how: str
) -> None:
    """Required by the base branch's protection (or, unprotected, every check but
    `pr.optional_checks`): a flaky coverage upload never sends the job back."""
    extra = {} if how == "protection" else {"optional_checks": ["coverage/*"]}
    if how == "protection":
        _required(forge)
    bench = _bench(tmp_path, forge, rounds=(GREET_V2,), **extra)
    forge.ci.policy = _with_coverage(needs_a_name(bench.remote, forge.flavor), forge.flavor)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None

    assert bench.poll() == []  # the required checks are green: nothing to do
    _approve(forge)
    assert bench.poll() == ["ready"]
    assert len(_coder_messages(bench)) == 1 and _notes(bench).sent[-1][0] == "ready"
    logged = log_path(bench.ctx.settings.state_dir, job.id).read_text()
    assert logged.count("not required, left alone: coverage/upload (failure)") == 1
    assert forge.unexpected == []


def test_a_round_for_a_required_check_names_the_optional_one_on_the_pr(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    _required(forge)
    bench = _bench(tmp_path, forge)
    forge.ci.policy = _with_coverage(needs_a_name(bench.remote, forge.flavor), forge.flavor)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None

    assert bench.poll() == ["new_round"]
    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")
    assert "coverage" not in _coder_messages(bench)[-1]  # the coder works on the tests only
    comment = [c["body"] for c in forge.prs[1].issue_comments][-1]
    assert "not required, left alone: coverage/upload (failure)" in comment
    assert bench.poll() == []  # tests green now; coverage still red but not required
    _approve(forge)
    assert bench.poll() == ["ready"]
    assert len(_coder_messages(bench)) == 2 and forge.unexpected == []


def test_a_required_check_that_never_reports_holds_ready(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    forge.rules.protect("main", Rule(contexts=["security-scan"]))
    bench = _bench(tmp_path, forge, rounds=(GREET_V2,), ci_timeout_s=600)
    _approve(forge)
    assert bench.poll() == []  # green checks, approved, but the required scan is missing
    clock = bench.ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(601)
    assert bench.poll() == ["escalated"]
    titles = [t for k, t, _b in _notes(bench).sent if k == "needs_you"]
    assert len(titles) == 1 and "CI has not finished" in titles[0]
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None and "security-scan pending" in (job.error or "")


@pytest.mark.parametrize("mode", ["wait", "ignore"])
def test_ci_wait_reports_and_ignore_reads_nothing(
    tmp_path: Path, forge: ForgeStandin, mode: str
) -> None:
    bench = _bench(tmp_path, forge, ci=mode)
    asked = len(forge.ci.asked)
    decisions = bench.poll()
    if mode == "wait":
        assert decisions == ["escalated"] and len(forge.ci.asked) > asked
        assert [k for k, _t, _b in _notes(bench).sent] == ["needs_you"]
    else:
        assert decisions == [] and len(forge.ci.asked) == asked
        _approve(forge)
        assert bench.poll() == ["ready"]


def test_checks_pending_past_the_timeout_ask_for_a_person_once(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    bench = _bench(tmp_path, forge, ci_timeout_s=600)
    job = bench.store.latest_for_fr("FR-1")
    assert job is not None
    head = bench.remote_head(job.branch or "") or ""
    kind: Kind = "run" if forge.flavor == "github" else "status"
    forge.ci.set(head, [StandinCheck("test", None, kind=kind)])
    clock = bench.ctx.clock
    assert isinstance(clock, FakeClock)

    assert bench.poll() == []
    clock.advance(599)
    assert bench.poll() == []
    clock.advance(2)
    assert bench.poll() == ["escalated"]
    assert bench.poll() == []
    titles = [t for k, t, _b in _notes(bench).sent if k == "needs_you"]
    assert len(titles) == 1 and titles[0].startswith("CI has not finished after 10 min")

    forge.ci.set(head, [StandinCheck("test", "success", kind=kind)])
    _approve(forge)
    assert bench.poll() == ["ready"]
    assert bench.store.get(job.id).error is None


def test_a_restart_announces_a_ready_pr_no_second_time(tmp_path: Path) -> None:
    with ForgeStandin("github") as forge, pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, forge.token)
        bench = _bench(tmp_path, forge, rounds=(GREET_V2,))
        _approve(forge)
        assert bench.poll() == ["ready"]
        again = make_bench_like(bench)
        assert poll_reviews(again.ctx, lambda _job, _what: None) == 0
        assert _notes(again).sent == []


def make_bench_like(bench: Bench) -> Bench:
    """A second runtime on the same state dir and database (a restarted daemon)."""
    from opus.daemon.runtime import build_runtime

    runtime = build_runtime(bench.ctx.settings, engine=bench.engine, clock=bench.ctx.clock)
    runtime.ctx.notifier = RecordingNotifier()
    return Bench(bench.root, bench.repo, bench.remote, runtime, bench.engine, bench.intake)
