"""A job process that ends its own job (failed, PR opened) is left to exit by itself.

Between its last transition and its exit it writes the notification and its last event;
the loop's lease check must not kill it in that moment (it once did, 14 ms after a
`failed`, and the failure notification was lost). A job taken away (cancelled) is still
stopped at once, and a process that never exits is stopped after the wrap-up time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opus.config import DaemonConfig, GitConfig, SandboxConfig, Settings, VaultConfig
from opus.daemon.loop import WRAP_UP_S, Daemon
from opus.daemon.runtime import build_runtime
from opus.domain import Job, JobState
from opus.testing.clock import FakeClock
from opus.testing.engine import ScriptedEngine
from tests.conftest import make_repo

NOTE = """\
---
id: FR-1
title: Export the report as CSV
status: planned
test_command: pytest -q
---
# Summary

The monthly report should be downloadable as CSV.
"""


def _daemon_holding_a_job(tmp_path: Path) -> tuple[Daemon, Job, FakeClock]:
    repo = make_repo(tmp_path / "repo", {"README.md": "# reports\n"})
    planned = tmp_path / "vault" / "10_features" / "03_planned"
    planned.mkdir(parents=True)
    (planned / "FR-1.md").write_text(NOTE)
    settings = Settings(
        base_dir=tmp_path,
        vault=VaultConfig(path=tmp_path / "vault", move_notes=False, settle_s=0),
        daemon=DaemonConfig(state_dir=tmp_path / ".opus"),
        sandbox=SandboxConfig(kind="none"),
        git=GitConfig(default_repo=repo),
    )
    clock = FakeClock()
    runtime = build_runtime(settings, engine=ScriptedEngine({}), clock=clock)
    runtime.ctx.store.set_flag("paused", "1")  # intake queues the FR; nothing is claimed
    daemon = Daemon(runtime, environ={})
    daemon._tick()
    job = runtime.ctx.store.claim(daemon.worker_id, lease_s=60)
    assert job is not None and job.fr_id == "FR-1"
    return daemon, job, clock


def _stops(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stopping its stage" in r.getMessage()]


@pytest.mark.parametrize("end", [JobState.FAILED, JobState.AWAITING_REVIEW])
def test_a_job_its_process_ended_is_left_to_exit_then_stopped_if_it_hangs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, end: JobState
) -> None:
    daemon, job, clock = _daemon_holding_a_job(tmp_path)
    store = daemon.ctx.store
    store.transition(job.id, end, holder=daemon.worker_id, error="tests failed 3 times")
    assert not store.heartbeat(job.id, daemon.worker_id, 60)  # the loop sees it as not held
    caplog.set_level(logging.INFO, logger="opus.daemon.loop")

    daemon._lost(job)
    clock.advance(WRAP_UP_S - 1)
    daemon._lost(job)
    assert _stops(caplog) == []  # still wrapping up: notification, last event, exit

    clock.advance(2)
    daemon._lost(job)
    assert _stops(caplog) == [f"FR-1: stopping its stage: lease lost (job {end.value})"]


def test_a_cancelled_job_is_stopped_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, job, _clock = _daemon_holding_a_job(tmp_path)
    daemon.ctx.store.transition(job.id, JobState.CANCELLED, error="cancelled by a person")
    caplog.set_level(logging.INFO, logger="opus.daemon.loop")

    daemon._lost(job)
    assert _stops(caplog) == ["FR-1: stopping its stage: cancelled"]
