"""SIGKILL in the middle of `code`, then a restart: the job resumes at `code`, the
planner is never asked again, and `opus run --once` takes it to a delivered branch."""

from __future__ import annotations

import shutil
import threading
from typing import Any

import frontmatter

from opus.domain import JobState, Stage
from opus.pipeline.context import JobControl
from opus.pipeline.executor import Outcome, run_job
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import daemon
from tests.e2e_pipeline.harness import WORKER, Project, claim_fr, write_fr
from tests.standins.messages_api import MessagesAPI, Reply, reply, text, tool_use


def _blocking_reply(reached: threading.Event, release: threading.Event) -> Reply:
    """A reply that holds the request open until released (bounded), so the test can
    kill the daemon while it waits on the model."""

    def play(_body: dict[str, Any]) -> dict[str, Any]:
        reached.set()
        release.wait(timeout=30)
        return reply(text("too late: the daemon is gone"))

    return play


def test_sigkill_during_code_resumes_at_code_without_replanning(
    api: MessagesAPI, project: Project
) -> None:
    reached, release = threading.Event(), threading.Event()
    api.add(*talk.planner(), _blocking_reply(reached, release))
    daemon.write_config(project)
    note = write_fr(project)

    first = daemon.start_once(project, api, "first.log")
    try:
        daemon.wait_until(reached.is_set, first, timeout_s=30)
        store = daemon.registry(project)
        (job,) = store.jobs()
        assert job.state is JobState.RUNNING and job.stage is Stage.CODE
        assert [r.stage for r in store.stage_runs(job.id)] == [Stage.PLAN]
    finally:
        daemon.stop(first)
        release.set()
    assert first.returncode == -9

    api.add(*talk.good_coder(), *talk.approve())
    log = daemon.run_once(project, api, "second.log")

    job = store.get(job.id)
    assert job.state is JobState.AWAITING_REVIEW, (job.error, log)
    runs = store.stage_runs(job.id)
    assert [r.stage for r in runs] == [
        Stage.PLAN, Stage.CODE, Stage.TEST, Stage.REVIEW, Stage.DELIVER
    ]
    # One planner run across both processes (ls, then submit); the coder ran twice,
    # the first time cut off by the kill.
    assert len(talk.first_messages(api, "planner")) == 1
    assert len(talk.requests_of(api, "planner")) == 2
    assert len(talk.first_messages(api, "coder")) == 2
    assert any(e.kind == "recovered" for e in store.events(job.id))
    # Delivered: the branch is on the remote, the PR note is written, the FR is in review.
    assert job.branch is not None
    assert "def sub(a, b)" in project.remote_file(job.branch, "calc.py")
    assert f"Opus-Job: {job.id}" in project.branch_log(job.branch)
    assert job.pr_url is not None and job.pr_url.endswith(".md")
    moved = project.vault / "10_features" / "05_review" / note.name
    meta = frontmatter.loads(moved.read_text()).metadata
    assert meta["status"] == "review" and meta["branch"] == job.branch
    store.close()


def test_a_stop_mid_code_resumes_there_even_when_the_worktree_vanished(
    api: MessagesAPI, project: Project
) -> None:
    """The daemon's stop (shutdown, preemption) lands on a checkpoint; the next worker
    rebuilds a deleted worktree from the branch and re-runs only the stage that stopped."""
    write_fr(project)
    job, ctx = claim_fr(project.settings())
    control = JobControl(job.id)

    def stop_while_coding(_body: dict[str, Any]) -> dict[str, Any]:
        control.request_stop("shutdown")
        edit = {"command": "create", "path": "calc.py", "file_text": "half-done\n"}
        return reply(tool_use(talk.EDITOR, edit))

    api.add(*talk.planner(), stop_while_coding)
    outcome = run_job(job, ctx, control)

    assert outcome == Outcome("stopped", "shutdown")
    # The plan is a checkpoint; the stopped coder's call is kept only as what it spent.
    stopped = [(r.stage, r.ok) for r in ctx.store.stage_runs(job.id)]
    assert stopped == [(Stage.PLAN, True), (Stage.CODE, False)]
    worktree = project.state_dir / "worktrees" / f"job-{job.id}"
    assert (worktree / "calc.py").read_text() == "half-done\n"  # the unfinished edit
    shutil.rmtree(worktree)
    assert ctx.store.release(job.id, WORKER)

    api.add(*talk.good_coder(), *talk.approve())
    resumed = ctx.store.claim("another-worker", 600)
    assert resumed is not None and resumed.id == job.id
    outcome = run_job(resumed, ctx, JobControl(job.id))

    assert outcome.kind == "awaiting_review", outcome.detail
    assert [r.stage for r in ctx.store.stage_runs(job.id) if r.ok] == [
        Stage.PLAN, Stage.CODE, Stage.TEST, Stage.REVIEW, Stage.DELIVER
    ]
    assert len(talk.first_messages(api, "planner")) == 1
    assert (worktree / "calc.py").read_text() == talk.CALC_WITH_SUB
    assert not api.script
