"""A critical FR pauses a low one at its checkpoint; the low one resumes afterwards."""

from __future__ import annotations

import threading

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, busy_coder
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until

ALL_STAGES = ["plan", "code", "test", "review", "deliver"]


def test_critical_fr_preempts_a_low_one(ws: Workspace, daemons: Daemons, agency: Agency) -> None:
    ws.write_config(daemon={"max_concurrent": 1})
    low_may_finish = threading.Event()
    agency.overrides[("FR-LOW", "coder")] = busy_coder("FR-LOW", low_may_finish)
    ws.write_fr("FR-LOW", priority="low")
    daemons.start(ws)
    wait_until(lambda: agency.count("FR-LOW", "coder") == 1, "FR-LOW's coder at work")

    ws.write_fr("FR-CRIT", priority="critical")
    low = ws.wait_state("FR-LOW", JobState.RUNNING)

    def preempting() -> bool:
        return any(event.kind == "preempting" for event in ws.store.events(low.id))

    wait_until(preempting, "the daemon to preempt FR-LOW")
    # The running stage completes (no work lost), then the job goes back to the queue.
    low_may_finish.set()
    crit = ws.wait_state("FR-CRIT", JobState.AWAITING_REVIEW)
    low = ws.wait_state("FR-LOW", JobState.AWAITING_REVIEW)

    assert ws.completed_stages("FR-CRIT") == ALL_STAGES
    assert ws.completed_stages("FR-LOW") == ALL_STAGES
    for role in ("planner", "coder", "reviewer"):
        assert agency.count("FR-LOW", role) == 1, role
    low_runs = {run.stage.value: run for run in ws.store.stage_runs(low.id) if run.ok}
    crit_runs = {run.stage.value: run for run in ws.store.stage_runs(crit.id) if run.ok}
    # Paused after its code checkpoint; resumed at test only once the critical one was done.
    assert low_runs["code"].finished_at < crit_runs["plan"].started_at  # type: ignore[operator]
    assert crit_runs["deliver"].finished_at < low_runs["test"].started_at  # type: ignore[operator]
    kinds = [event.kind for event in ws.store.events(low.id)]
    assert kinds.count("released") == 1 and kinds.count("claimed") == 2
