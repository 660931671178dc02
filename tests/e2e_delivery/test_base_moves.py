"""The base of an open PR moves (local provider, a real bare remote): opus merges the base
into the branch — with the coder when it conflicts — tests, and pushes a merge commit on
the same PR, never a rebase or a force push; a conflict the coder cannot resolve reaches
a person once (a real apprise json:// notification)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.config import NotifyConfig, PRConfig
from opus.domain import Job, JobState, Role
from opus.pipeline.executor import Outcome
from opus.seams import AgentTask
from opus.status import status_report
from opus.testing.engine import Round, Step, Submit, Write
from tests.conftest import run_git
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import GREET_V1, Bench, make_bench
from tests.ops.httpsink import Sink, http_sink
from tests.standins.forge import ForgeStandin

APP = "src/app.py"
BASE_APP = "def greet() -> str:\n    return 'hello'\n\n\nif __name__ == '__main__':\n    greet()\n"
RESOLVED = "def greet() -> str:\n    return 'hello'\n"
BASE_WHY = "Say hello instead of hi\n\nThe product team wants a warmer greeting everywhere."


@pytest.fixture
def sink() -> Iterator[Sink]:
    with http_sink() as server:
        yield server


def _resolve(task: AgentTask) -> Sequence[Step]:
    """The coder of the conflict round: the markers are in its worktree; it resolves."""
    assert "<<<<<<<" in (task.worktree / APP).read_text()
    return [Write(APP, RESOLVED), Submit({"summary": "Kept the base's hello."})]


GIVE_UP: list[Step] = [Submit({"summary": "I could not tell which greeting is wanted."})]


def _delivered(tmp_path: Path, *rounds: Round, sink: Sink | None = None,
               pr: PRConfig | None = None) -> tuple[Bench, Job, str]:
    """Round 1 delivered (the coder's later rounds play `rounds`); the PR's head."""
    notify = NotifyConfig(urls=[sink.url]) if sink is not None else None
    bench = make_bench(tmp_path, rounds=(GREET_V1, *rounds), notify=notify, pr=pr)
    bench.write_fr()
    job = bench.enqueue()
    outcome = bench.work()
    assert isinstance(outcome, Outcome) and outcome.kind == "awaiting_review", outcome
    job = bench.store.get(job.id)
    head = bench.remote_head(job.branch or "")
    assert head is not None
    return bench, job, head


def _base_moves(bench: Bench, files: dict[str, str], message: str) -> str:
    """A person pushes to `main` on the remote; the local repo's `main` stays behind."""
    clone = bench.root / "someone"
    if not clone.exists():
        run_git(bench.root, "clone", "-q", str(bench.remote), str(clone))
    run_git(clone, "pull", "-q", "origin", "main")
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    run_git(clone, "add", "-A")
    run_git(clone, "commit", "-q", "-m", message)
    run_git(clone, "push", "-q", "origin", "main")
    return run_git(clone, "rev-parse", "HEAD")


def _coders(bench: Bench) -> list[AgentTask]:
    return [task for task in bench.engine.tasks if task.role is Role.CODER]


def _reviewers(bench: Bench) -> list[AgentTask]:
    return [task for task in bench.engine.tasks if task.role is Role.REVIEWER]


def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return run_git(repo, "merge-base", "--is-ancestor", older, newer) == ""


def _pr_notes(bench: Bench) -> list[Path]:
    return sorted((bench.vault / "10_features").rglob("PR-*.md"))


def test_a_conflicting_base_is_merged_and_resolved_by_the_coder_on_the_same_pr(
    tmp_path: Path,
) -> None:
    bench, job, old_head = _delivered(tmp_path, _resolve)
    base = _base_moves(bench, {APP: BASE_APP}, BASE_WHY)

    assert bench.poll() == ["new_round"]
    assert bench.store.get(job.id).state is JobState.QUEUED
    outcome = bench.work()

    assert outcome == Outcome("awaiting_review", job.pr_url or "")
    coder = _coders(bench)[1].user_message
    assert APP in coder and "Say hello instead of hi" in coder and "warmer greeting" in coder
    assert "FR-1" in coder
    head = bench.remote_head(job.branch or "")
    assert head is not None and head != old_head
    parents = run_git(bench.remote, "log", "-1", "--format=%P", head).split()
    assert len(parents) == 2 and base in parents  # a merge commit of the moved base
    assert _is_ancestor(bench.remote, old_head, head)  # a fast-forward: nothing rewritten
    assert run_git(bench.remote, "log", "-1", "--format=%(trailers:key=Opus-Job,valueonly)",
                   head).strip() == str(job.id)  # fmt: skip
    assert run_git(bench.remote, "show", f"{head}:{APP}") + "\n" == RESOLVED
    assert len(_pr_notes(bench)) == 1  # the same PR
    rounds = [e.message for e in bench.store.events(job.id) if e.kind == "conflict_round"]
    assert len(rounds) == 1  # the trigger: the head it was taken on and the base it met
    assert old_head[:10] in rounds[0] and base[:10] in rounds[0] and APP in rounds[0]
    assert bench.poll() == []  # up to date now: nothing more to do
    assert len(_coders(bench)) == 2


def test_an_unresolvable_conflict_reaches_a_person_once(tmp_path: Path, sink: Sink) -> None:
    bench, job, old_head = _delivered(tmp_path, GIVE_UP, sink=sink)
    _base_moves(bench, {APP: BASE_APP}, BASE_WHY)

    assert bench.poll() == ["new_round"]
    outcome = bench.work()

    assert isinstance(outcome, Outcome) and outcome.kind == "escalated"
    assert APP in outcome.detail
    assert bench.remote_head(job.branch or "") == old_head  # nothing half-merged was pushed
    now = bench.store.get(job.id)
    assert now.state is JobState.AWAITING_REVIEW
    assert now.error is not None and "needs you" in now.error and APP in now.error
    bench.runtime.notifier.flush()
    needs = [m for m in sink.received if "needs you" in m.get("title", "")]
    assert len(needs) == 1 and "merge conflict" in needs[0]["title"]
    assert str(_pr_notes(bench)[0]) in needs[0]["message"]

    assert bench.poll() == []  # the escalation holds: no second round, no second message
    bench.runtime.notifier.flush()
    assert len([m for m in sink.received if "needs you" in m.get("title", "")]) == 1
    assert len(_coders(bench)) == 2
    bench.intake.tick()
    meta = bench.note()[1]
    assert "needs you" in str(meta.get("error"))
    rows = status_report(bench.store, bench.ctx.settings, datetime.now(UTC)).jobs
    assert any(row.fr == "FR-1" and "needs you" in (row.error or "") for row in rows)


def test_a_person_resolving_it_clears_the_escalation(tmp_path: Path, sink: Sink) -> None:
    bench, job, _old = _delivered(tmp_path, GIVE_UP, sink=sink)
    base = _base_moves(bench, {APP: BASE_APP}, BASE_WHY)
    bench.poll()
    bench.work()
    clone = bench.root / "someone"
    run_git(clone, "fetch", "-q", "origin")
    run_git(clone, "checkout", "-q", "-b", "fix", f"origin/{job.branch}")
    merged = subprocess.run(["git", "merge", "-q", "--no-edit", base], cwd=clone,
                            capture_output=True, check=False)  # fmt: skip
    assert merged.returncode == 1  # the person meets the conflict and resolves it by hand
    (clone / APP).write_text(RESOLVED)
    run_git(clone, "commit", "-qam", "Merge main, keep hello")
    run_git(clone, "push", "-q", "origin", f"HEAD:{job.branch}")

    assert bench.poll() == []
    now = bench.store.get(job.id)
    assert now.error is None and now.state is JobState.AWAITING_REVIEW
    assert "conflict_cleared" in [e.kind for e in bench.store.events(job.id)]


def test_when_behind_a_clean_base_is_merged_without_an_agent_and_tests_still_run(
    tmp_path: Path,
) -> None:
    bench, job, old_head = _delivered(
        tmp_path, pr=PRConfig(update_branch="when-behind"))
    base = _base_moves(bench, {"docs/usage.md": "Run it.\n"}, "Document usage")

    assert bench.poll() == ["new_round"]
    outcome = bench.work()

    assert outcome == Outcome("awaiting_review", job.pr_url or "")
    assert len(_coders(bench)) == 1 and len(_reviewers(bench)) == 1  # no agent this round
    runs = [r for r in bench.store.stage_runs(job.id) if r.ok and r.iteration == 2]
    assert [r.stage.value for r in runs] == ["code", "test", "deliver"]
    assert runs[1].output["passed"] is True
    head = bench.remote_head(job.branch or "")
    assert head is not None and _is_ancestor(bench.remote, old_head, head)
    assert base in run_git(bench.remote, "log", "-1", "--format=%P", head).split()
    assert bench.poll() == []


def test_by_default_a_clean_but_behind_branch_is_left_alone(tmp_path: Path) -> None:
    bench, job, old_head = _delivered(tmp_path)
    _base_moves(bench, {"docs/usage.md": "Run it.\n"}, "Document usage")
    assert bench.poll() == []
    assert bench.remote_head(job.branch or "") == old_head
    assert bench.store.get(job.id).state is JobState.AWAITING_REVIEW


def test_a_restart_mid_round_resumes_and_a_human_push_meanwhile_is_kept(
    tmp_path: Path,
) -> None:
    crashes = {"left": 1}

    def crash_once(task: AgentTask) -> Sequence[Step]:
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("worker died mid-stage")
        return _resolve(task)

    bench, job, old_head = _delivered(tmp_path, crash_once)
    base = _base_moves(bench, {APP: BASE_APP}, BASE_WHY)
    assert bench.poll() == ["new_round"]
    # Meanwhile a person pushes a commit of their own to the PR branch.
    clone = bench.root / "someone"
    run_git(clone, "fetch", "-q", "origin")
    run_git(clone, "checkout", "-q", "-b", "theirs", f"origin/{job.branch}")
    (clone / "NOTES.md").write_text("reviewer notes\n")
    run_git(clone, "add", "-A")
    run_git(clone, "commit", "-qm", "A reviewer's note")
    human = run_git(clone, "rev-parse", "HEAD")
    run_git(clone, "push", "-q", "origin", f"HEAD:{job.branch}")

    with pytest.raises(RuntimeError):
        bench.work()
    bench.store.release(job.id, "e2e-worker")
    outcome = bench.work()

    assert outcome == Outcome("awaiting_review", job.pr_url or "")
    head = bench.remote_head(job.branch or "")
    assert head is not None
    assert _is_ancestor(bench.remote, human, head) and _is_ancestor(bench.remote, old_head, head)
    assert _is_ancestor(bench.remote, base, head)
    merges = run_git(bench.remote, "rev-list", "--merges", f"{human}..{head}").split()
    assert len(merges) == 1  # one merge, made again after the crash, pushed once
    assert len(_pr_notes(bench)) == 1


def test_a_forge_that_cannot_merge_gets_the_base_merged(
    tmp_path: Path, forge: ForgeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub or Gitea says `mergeable: false` (GitHub first answers null while it
    computes) although git merges cleanly here: the base is merged, no agent runs."""
    monkeypatch.setattr("opus.forges.github.MERGEABLE_WAITS_S", (0.01, 0.01, 0.01))
    bench, job, old_head = _delivered(tmp_path, pr=forge_config(forge))
    forge.remote = bench.remote
    base = _base_moves(bench, {"docs/usage.md": "Run it.\n"}, "Document usage")
    assert bench.poll() == []  # the forge can merge it: left alone (update_branch = never)

    forge.set_mergeable(1, False, unknown_reads=1)
    assert bench.poll() == ["new_round"]
    outcome = bench.work()

    assert outcome == Outcome("awaiting_review", job.pr_url or "")
    assert len(_coders(bench)) == 1
    head = bench.remote_head(job.branch or "")
    assert head is not None and _is_ancestor(bench.remote, old_head, head)
    assert base in run_git(bench.remote, "log", "-1", "--format=%P", head).split()
    comments = [r.body["body"] for r in forge.posts("/comments")]
    assert any("Merged origin/main" in body for body in comments)
    assert len(forge.prs) == 1 and forge.unexpected == []


def test_a_conflict_on_a_forge_pr_is_resolved_on_the_same_pr(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    bench, job, old_head = _delivered(tmp_path, _resolve, pr=forge_config(forge))
    forge.remote = bench.remote
    _base_moves(bench, {APP: BASE_APP}, BASE_WHY)
    assert forge.pr_detail_json(forge.prs[1])["mergeable"] is False

    assert bench.poll() == ["new_round"]
    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")

    head = bench.remote_head(job.branch or "")
    assert head is not None and _is_ancestor(bench.remote, old_head, head)
    assert forge.pr_detail_json(forge.prs[1])["mergeable"] is True
    assert len(forge.prs) == 1 and forge.unexpected == []
    assert bench.poll() == []


def test_without_a_remote_the_local_base_is_watched_the_same_way(tmp_path: Path) -> None:
    """`local` provider, a repository with no remote: the branch stays in the repo, and a
    conflicting commit on its own `main` is merged and resolved the same way."""
    bench = make_bench(tmp_path, rounds=(GREET_V1, _resolve))
    run_git(bench.repo, "remote", "remove", "origin")
    bench.write_fr()
    job = bench.enqueue()
    assert bench.work() == Outcome("awaiting_review", bench.store.get(job.id).pr_url or "")
    job = bench.store.get(job.id)
    delivered = run_git(bench.repo, "rev-parse", job.branch or "")
    (bench.repo / "src").mkdir(exist_ok=True)
    (bench.repo / APP).write_text(BASE_APP)
    run_git(bench.repo, "add", "-A")
    run_git(bench.repo, "commit", "-q", "-m", BASE_WHY)
    base = run_git(bench.repo, "rev-parse", "HEAD")

    assert bench.poll() == ["new_round"]
    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")

    head = run_git(bench.repo, "rev-parse", job.branch or "")
    assert set(run_git(bench.repo, "log", "-1", "--format=%P", head).split()) == {delivered, base}
    assert run_git(bench.repo, "show", f"{head}:{APP}") + "\n" == RESOLVED
    assert bench.poll() == []


def test_past_pr_ci_rounds_a_conflict_goes_to_a_person_without_a_round(
    tmp_path: Path, sink: Sink
) -> None:
    bench, job, old_head = _delivered(tmp_path, _resolve, sink=sink,
                                      pr=PRConfig(ci_rounds=0))  # fmt: skip
    _base_moves(bench, {APP: BASE_APP}, BASE_WHY)

    assert bench.poll() == ["escalated"]
    assert bench.poll() == []  # once

    assert len(_coders(bench)) == 1
    assert bench.remote_head(job.branch or "") == old_head
    bench.runtime.notifier.flush()
    needs = [m for m in sink.received if "needs you" in m.get("title", "")]
    assert len(needs) == 1 and APP in needs[0]["message"]
    events = [e for e in bench.store.events(job.id) if e.kind == "conflict_escalated"]
    assert len(events) == 1 and old_head[:10] in events[0].message


def _resolve_but_break_the_tests(task: AgentTask) -> Sequence[Step]:
    """A coder that resolves the markers but leaves the tests failing, every round."""
    if "<<<<<<<" in (task.worktree / APP).read_text():
        return [Write(APP, RESOLVED), Write("check.py", "raise SystemExit('broken')\n"),
                Submit({"summary": "Resolved, tests not run."})]  # fmt: skip
    return [Write("check.py", "raise SystemExit('still broken')\n"),
            Submit({"summary": "Tried again."})]  # fmt: skip


def test_a_conflict_round_out_of_rounds_leaves_the_worktree_at_the_pushed_head(
    tmp_path: Path, sink: Sink
) -> None:
    """The coder resolves the conflict but its tests never pass within the cap: nothing
    is pushed, the worktree holds no unpushed commit and no merge in progress, the PR
    says opus stopped, and the next round (a clean base merge) builds on what the PR
    shows — never on the abandoned attempt."""
    notify = NotifyConfig(urls=[sink.url])
    bench = make_bench(tmp_path, rounds=(GREET_V1, _resolve_but_break_the_tests),
                       notify=notify, max_iterations=2,
                       pr=PRConfig(update_branch="when-behind"))  # fmt: skip
    bench.write_fr()
    job = bench.enqueue()
    assert bench.work() == Outcome("awaiting_review", bench.store.get(job.id).pr_url or "")
    job = bench.store.get(job.id)
    old_head = bench.remote_head(job.branch or "") or ""
    base = _base_moves(bench, {APP: BASE_APP}, BASE_WHY)
    assert bench.poll() == ["new_round"]

    outcome = bench.work()

    assert isinstance(outcome, Outcome) and outcome.kind == "escalated", outcome
    assert bench.remote_head(job.branch or "") == old_head
    wt = bench.ctx.settings.state_dir / "worktrees" / f"job-{job.id}"
    assert run_git(wt, "rev-parse", "HEAD") == old_head
    assert run_git(wt, "status", "--porcelain") == ""
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=wt,
                          capture_output=True, check=False).returncode != 0  # fmt: skip
    handed = [r for r in bench.store.stage_runs(job.id) if r.stage.value == "deliver"][-1]
    assert handed.output["handed_back"] == "conflict" and handed.commit == old_head
    attempt = str(handed.output["attempt"])
    assert run_git(bench.remote, "rev-parse", f"refs/opus/wip/{job.id}") == attempt
    assert base in run_git(bench.remote, "log", "-1", "--format=%P", attempt).split()
    now = bench.store.get(job.id)
    assert now.state is JobState.AWAITING_REVIEW and "needs you" in (now.error or "")
    bench.runtime.notifier.flush()
    assert len([m for m in sink.received if "needs you" in m.get("title", "")]) == 1
    note = _pr_notes(bench)[0].read_text()
    assert "stopped after round 2" in note and old_head[:10] in note and "broken" in note

    # A person merges the base by hand; later the base moves again, cleanly.
    clone = bench.root / "someone"
    run_git(clone, "fetch", "-q", "origin")
    run_git(clone, "checkout", "-q", "-b", "fix", f"origin/{job.branch}")
    subprocess.run(["git", "merge", "-q", "--no-edit", base], cwd=clone,
                   capture_output=True, check=False)  # fmt: skip
    (clone / APP).write_text(RESOLVED)
    run_git(clone, "commit", "-qam", "Merge main, keep hello")
    theirs = run_git(clone, "rev-parse", "HEAD")
    run_git(clone, "push", "-q", "origin", f"HEAD:{job.branch}")
    assert bench.poll() == []  # up to date: the escalation clears
    run_git(clone, "checkout", "-q", "main")
    later = _base_moves(bench, {"docs/usage.md": "Run it.\n"}, "Document usage")
    assert bench.poll() == ["new_round"]

    assert bench.work() == Outcome("awaiting_review", job.pr_url or "")

    head = bench.remote_head(job.branch or "") or ""
    assert set(run_git(bench.remote, "log", "-1", "--format=%P", head).split()) == {theirs, later}
    assert subprocess.run(["git", "merge-base", "--is-ancestor", attempt, head],
                          cwd=bench.remote, check=False).returncode == 1  # fmt: skip
    assert "broken" not in run_git(bench.remote, "show", f"{head}:check.py")
