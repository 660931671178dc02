"""The buttons: retry, cancel, pause, resume — the CLI's own calls, then a wake-up.

`perform` runs one action against the writable registry and wakes any daemon that shares
the state dir, exactly as `opus retry` and friends do. A wrong state is a `UsageError`
(HTTP 409), an unknown job a `NotFound` (404); their messages are shown as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from opus.control import cancel, retry, set_paused
from opus.dashboard.context import DashboardContext
from opus.errors import NotFound
from opus.wake import wake

JOB_ACTIONS = ("retry", "cancel")
GLOBAL_ACTIONS = ("pause", "resume")


def _retry(ctx: DashboardContext, job_id: int | None) -> str:
    job = retry(ctx.store(), str(job_id))
    return f"{job.fr_id}: re-queued (job {job.id})"


def _cancel(ctx: DashboardContext, job_id: int | None) -> str:
    job = cancel(ctx.store(), ctx.settings, str(job_id))
    return f"{job.fr_id}: cancelled (job {job.id})"


def _pause(ctx: DashboardContext, _job_id: int | None) -> str:
    set_paused(ctx.store(), True)
    return "paused: no new work will be claimed; running jobs finish"


def _resume(ctx: DashboardContext, _job_id: int | None) -> str:
    set_paused(ctx.store(), False)
    return "resumed: claiming new work"


ACTIONS: dict[str, Callable[[DashboardContext, int | None], str]] = {
    "retry": _retry, "cancel": _cancel, "pause": _pause, "resume": _resume,
}


def perform(ctx: DashboardContext, action: str, job_id: int | None = None) -> str:
    """Run `action` (on job `job_id` for retry and cancel); returns what happened."""
    if action not in (JOB_ACTIONS if job_id is not None else GLOBAL_ACTIONS):
        raise NotFound(f"no action {action!r} here; jobs take {', '.join(JOB_ACTIONS)}, "
                       f"the board {', '.join(GLOBAL_ACTIONS)}")
    if job_id is not None and ctx.source.job(job_id) is None:
        raise NotFound(f"no job {job_id}")
    message = ACTIONS[action](ctx, job_id)
    wake(ctx.settings.state_dir)
    return message
