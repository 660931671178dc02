"""Pure decisions of the supervisor: which stage is stuck, which job to preempt.

No clock, no I/O: the loop passes snapshots in and acts on what comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opus.domain import Priority

# The tester is silent while tests run; its own timeout bounds it, not agent idleness.
AGENT_STAGES = frozenset({"plan", "code", "review"})


@dataclass(frozen=True)
class RunningSnapshot:
    job_id: int
    priority: Priority
    stage: str | None
    idle_s: float
    stage_elapsed_s: float
    stopping: bool


def stuck_reason(run: RunningSnapshot, *, idle_limit_s: float, stage_limit_s: float) -> str | None:
    """Why the stage of `run` counts as stuck, or None."""
    if run.stopping or run.stage is None:
        return None
    if run.stage_elapsed_s > stage_limit_s:
        minutes, limit = run.stage_elapsed_s / 60, stage_limit_s / 60
        return f"stage {run.stage} ran {minutes:.0f} min (limit {limit:.0f})"
    if run.stage in AGENT_STAGES and run.idle_s > idle_limit_s:
        return f"no agent activity in stage {run.stage} for {run.idle_s / 60:.0f} min"
    return None


def preemption_victim(
    running: Sequence[RunningSnapshot], waiting: Priority | None, slots: int
) -> int | None:
    """The job to pause so a waiting `critical` FR can run, or None.

    Only when every slot is busy, nothing is already being stopped, and a running job
    is less urgent than critical; the least urgent (then the most recent) is chosen.
    """
    if waiting is not Priority.CRITICAL or len(running) < slots:
        return None
    if any(run.stopping for run in running):
        return None
    candidates = [run for run in running if run.priority.rank > Priority.CRITICAL.rank]
    if not candidates:
        return None
    victim = max(candidates, key=lambda run: (run.priority.rank, run.job_id))
    return victim.job_id
