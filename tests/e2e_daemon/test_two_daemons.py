"""Two worker daemons and an intake daemon on one PostgreSQL registry (SPEC §9)."""

from __future__ import annotations

import threading

import pytest

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, file_for
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until

FRS = [f"FR-{n}" for n in range(1, 7)]


@pytest.mark.postgres
def test_two_workers_never_run_the_same_job(
    pg_ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    ws = pg_ws
    ws.write_config(daemon={"max_concurrent": 1})
    both_busy = threading.Event()
    for fr_id in FRS:
        agency.hold(fr_id, "coder", both_busy)
        ws.write_fr(fr_id)
    daemons.start(ws, "--role", "intake")
    daemons.start(ws, "--role", "worker")
    daemons.start(ws, "--role", "worker")

    # One job per worker at a time, so two coders waiting at once means both workers work.
    wait_until(lambda: len(agency.waiting) == 2, "both workers to be in a coder")
    both_busy.set()

    jobs = [ws.wait_state(fr_id, JobState.AWAITING_REVIEW, timeout_s=30) for fr_id in FRS]
    for fr_id, job in zip(FRS, jobs, strict=True):
        for role in ("planner", "coder", "reviewer"):
            assert agency.count(fr_id, role) == 1, (fr_id, role)
        stages = [run.stage.value for run in ws.store.stage_runs(job.id)]
        assert stages == ["plan", "code", "test", "review", "deliver"], fr_id
        assert ws.branch_files(fr_id) == {file_for(fr_id)}
    claims = [e.message for job in jobs for e in ws.store.events(job.id) if e.kind == "claimed"]
    assert len(claims) == len(FRS)
    assert len({message.split()[-1] for message in claims}) == 2  # both workers took jobs
