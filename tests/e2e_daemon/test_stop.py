"""Stop means stop: cancel, SIGTERM, a second SIGTERM, and a daemon killed outright.

Each test runs a `command`-engine coder that sleeps (tests/e2e_daemon/stopping.py) and
looks for its processes in `/proc`. Bounds carry a wide margin for a busy machine; the
measured figure is printed.
"""

from __future__ import annotations

import signal
import time

import pytest

from opus.domain import JobState, Stage
from opus.sandbox import bwrap_available
from tests.conftest import run_git
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.stopping import (
    agent,
    fast_coder,
    fork_servers,
    job_processes,
    sleeping_coder,
    sleeps,
    stage_processes,
    stubborn_coder,
    token,
)

ALL_STAGES = ["plan", "code", "test", "review", "deliver"]
MARGIN_S = 3.0
"""Added to every bound: the machine these run on may be busy."""


def _in_coder(ws: Workspace, mark: str) -> None:
    wait_until(lambda: sleeps(mark), "the coder's command to run", timeout_s=60)
    job = ws.job("FR-1")
    assert job is not None and job.stage is Stage.CODE


def _gone_within(mark: str, started: float, limit_s: float, what: str) -> float:
    wait_until(lambda: not stage_processes(mark), what, timeout_s=limit_s + 10)
    elapsed = time.monotonic() - started
    print(f"{what}: {elapsed:.2f}s")
    assert elapsed < limit_s, f"{what} took {elapsed:.2f}s"
    return elapsed


def test_cancel_kills_the_running_stage_and_keeps_nothing(
    ws: Workspace, daemons: Daemons
) -> None:
    mark = token()
    ws.write_config(agents=agent(sleeping_coder(mark), mark), daemon={"stop_grace_s": 5})
    ws.write_fr("FR-1")
    daemons.start(ws)
    _in_coder(ws, mark)
    job = ws.job("FR-1")
    assert job is not None and job.branch
    before = run_git(ws.repo, "rev-parse", job.branch)

    invoked = time.monotonic()
    code, output = ws.cli("cancel", "FR-1")
    assert code == 0, output
    print(f"`opus cancel` itself took {time.monotonic() - invoked:.2f}s")
    _gone_within(mark, time.monotonic(), 2.0 + MARGIN_S, "the cancelled stage's processes")
    print(f"from `opus cancel` invoked to the stage gone: {time.monotonic() - invoked:.2f}s")

    # Settled: the worktree goes; the branch has nothing of the cancelled stage.
    worktree = ws.root / ".opus" / "worktrees" / f"job-{job.id}"
    wait_until(lambda: not worktree.exists(), "the cancelled job's worktree to be removed")
    assert ws.job("FR-1").state is JobState.CANCELLED  # type: ignore[union-attr]
    assert run_git(ws.repo, "rev-parse", job.branch) == before
    for repo in (ws.repo, ws.root / "remote.git"):
        assert run_git(repo, "log", "--all", "--format=%H", "--", "work.txt") == ""
    assert not job_processes(ws.root)


def test_sigterm_requeues_at_the_checkpoint_within_the_grace_and_resumes(
    ws: Workspace, daemons: Daemons
) -> None:
    grace_s = 3.0
    mark = token()
    # Without bwrap nothing but the grace's SIGKILL ends a shell that ignores SIGTERM.
    ws.settings["sandbox"] = {"kind": "none"}
    ws.write_config(agents=agent(stubborn_coder(mark), mark), daemon={"stop_grace_s": grace_s})
    ws.write_fr("FR-1")
    daemon = daemons.start(ws)
    _in_coder(ws, mark)

    started = time.monotonic()
    code = daemon.stop(signal.SIGTERM, timeout_s=grace_s + 30)
    elapsed = time.monotonic() - started
    print(f"SIGTERM to exit with a stage that ignores SIGTERM (grace {grace_s}s): {elapsed:.2f}s")
    assert code == 0, daemon.output
    assert elapsed < grace_s + MARGIN_S
    assert not stage_processes(mark) and not job_processes(ws.root)
    assert "stopping: 1 job(s) at stage code (FR-1)" in daemon.output
    job = ws.job("FR-1")
    assert job is not None and job.state is JobState.QUEUED and job.worker is None
    assert ws.completed_stages("FR-1") == ["plan"]

    # The next start resumes at the code stage; the plan is not made again.
    ws.write_config(agents=agent(fast_coder("FR-1")), daemon={"stop_grace_s": grace_s})
    daemons.start(ws)
    done = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    assert ws.completed_stages("FR-1") == ALL_STAGES
    plans = [run for run in ws.store.stage_runs(done.id) if run.stage is Stage.PLAN]
    assert len(plans) == 1


def test_a_second_sigterm_stops_at_once(ws: Workspace, daemons: Daemons) -> None:
    mark = token()
    ws.write_config(agents=agent(stubborn_coder(mark), mark), daemon={"stop_grace_s": 60})
    ws.write_fr("FR-1")
    daemon = daemons.start(ws)
    _in_coder(ws, mark)

    daemon.send(signal.SIGTERM)
    wait_until(lambda: "stopping: 1 job(s)" in daemon.output, "the first stop to begin")
    started = time.monotonic()
    daemon.send(signal.SIGTERM)
    daemon.proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    print(f"second SIGTERM to exit (grace 60s): {elapsed:.2f}s")
    assert elapsed < MARGIN_S
    _gone_within(mark, started, 1.0 + MARGIN_S, "the stage's processes after the second SIGTERM")
    assert not job_processes(ws.root)


KINDS = ["none", pytest.param("bwrap", marks=pytest.mark.skipif(
    not bwrap_available(), reason="bwrap is not installed"))]


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_of_a_stage_outlives_a_killed_daemon(
    ws: Workspace, daemons: Daemons, kind: str
) -> None:
    mark = token()
    ws.write_config(agents=agent(stubborn_coder(mark), mark), sandbox={"kind": kind})
    ws.write_fr("FR-1")
    daemon = daemons.start(ws)
    _in_coder(ws, mark)
    wait_until(lambda: len(stage_processes(mark)) >= 3, "the shell, its sleep, the one that left")

    started = time.monotonic()
    daemon.proc.kill()  # the daemon only, not its process group
    daemon.proc.wait(timeout=10)
    _gone_within(mark, started, 1.0 + MARGIN_S, f"every process of the stage ({kind})")
    wait_until(lambda: not fork_servers(ws.root), "the fork server and job process to end",
               timeout_s=5)
