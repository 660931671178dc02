"""An engine call in flight is abandoned on stop: SIGTERM or `opus cancel` while the
coder's Messages API request is unanswered.

The stand-in accepts the coder's first request and never answers (`Hang`, bounded by
`HANG_LIMIT_S`); the real `anthropic` SDK in the daemon's job process waits on it. Stopping
must not wait for the answer: the job process dies, and with it the connection, which the
stand-in sees close. Bounds carry a wide margin for a busy machine; the figures are printed.
"""

from __future__ import annotations

import signal
import time

from opus.domain import JobState, Stage
from tests.conftest import run_git
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.stopping import job_processes
from tests.standins.messages_api import Hang

GRACE_S = 2.0
MARGIN_S = 5.0
"""Added to every bound: the machine these run on may be busy."""
HANG_LIMIT_S = 90.0
"""The stand-in never holds a request longer than this, whatever happens."""


def _coder_in_flight(ws: Workspace, agency: Agency, daemons: Daemons) -> Hang:
    """Start a daemon on FR-1 and return once the coder's request is held unanswered."""
    hang = Hang(HANG_LIMIT_S)
    agency.overrides[("FR-1", "coder")] = lambda _body: hang
    ws.write_config(daemon={"stop_grace_s": GRACE_S})
    ws.write_fr("FR-1")
    daemons.start(ws)
    wait_until(hang.accepted.is_set, "the coder's request to reach the stand-in", timeout_s=60)
    job = ws.job("FR-1")
    assert job is not None and job.state is JobState.RUNNING and job.stage is Stage.CODE
    assert job_processes(ws.root), "the job runs in a process of its own"
    assert not hang.closed.is_set(), "the client holds the connection while it waits"
    return hang


def _closed_within(hang: Hang, started: float, limit_s: float) -> float:
    wait_until(hang.closed.is_set, "the stand-in to see the connection closed",
               timeout_s=limit_s + 10)
    assert hang.closed_at is not None
    elapsed = hang.closed_at - started
    print(f"the held request's connection closed after {elapsed:.2f}s")
    assert elapsed < limit_s, f"the connection closed after {elapsed:.2f}s"
    return elapsed


def test_sigterm_abandons_the_request_in_flight_and_requeues(
    ws: Workspace, agency: Agency, daemons: Daemons
) -> None:
    hang = _coder_in_flight(ws, agency, daemons)
    daemon = daemons.started[-1]

    started = time.monotonic()
    code = daemon.stop(signal.SIGTERM, timeout_s=GRACE_S + 30)
    elapsed = time.monotonic() - started
    print(f"SIGTERM to exit with the coder's request unanswered (grace {GRACE_S}s): "
          f"{elapsed:.2f}s")
    assert code == 0, daemon.output
    assert elapsed < GRACE_S + MARGIN_S, f"the daemon took {elapsed:.2f}s to exit"
    _closed_within(hang, started, GRACE_S + MARGIN_S)
    assert "stopping: 1 job(s) at stage code (FR-1)" in daemon.output
    assert not job_processes(ws.root)
    job = ws.job("FR-1")
    assert job is not None and job.state is JobState.QUEUED and job.worker is None
    assert ws.completed_stages("FR-1") == ["plan"], "requeued at its checkpoint"
    assert agency.count("FR-1", "coder") == 1


def test_cancel_abandons_the_request_in_flight_and_keeps_nothing(
    ws: Workspace, agency: Agency, daemons: Daemons
) -> None:
    hang = _coder_in_flight(ws, agency, daemons)
    job = ws.job("FR-1")
    assert job is not None and job.branch
    before = run_git(ws.repo, "rev-parse", job.branch)

    started = time.monotonic()
    code, output = ws.cli("cancel", "FR-1")
    assert code == 0, output
    print(f"`opus cancel` itself took {time.monotonic() - started:.2f}s")
    wait_until(lambda: not job_processes(ws.root), "the job's process to end",
               timeout_s=GRACE_S + MARGIN_S + 10)
    gone = time.monotonic() - started
    print(f"from `opus cancel` invoked to the job's process gone: {gone:.2f}s")
    assert gone < GRACE_S + MARGIN_S, f"the job's process took {gone:.2f}s to end"
    _closed_within(hang, started, GRACE_S + MARGIN_S)

    cancelled = ws.wait_state("FR-1", JobState.CANCELLED, timeout_s=10)
    assert [run.stage for run in ws.store.stage_runs(cancelled.id) if run.ok] == [Stage.PLAN]
    assert run_git(ws.repo, "rev-parse", job.branch) == before, "nothing of the code stage"
    for repo in (ws.repo, ws.root / "remote.git"):
        assert run_git(repo, "log", "--all", "--format=%H", "--", "fr-1.txt") == ""
    assert agency.count("FR-1", "coder") == 1
