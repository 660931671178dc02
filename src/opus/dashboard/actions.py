"""The buttons: retry, cancel, answer (or decide a plan), pause, resume.

Each is `opus.actions.Operator`'s — the calls `opus retry`, `opus answer` and the keys of
`opus top` make: change the registry, wake any daemon sharing the state dir, say what
happened. A wrong state is a `UsageError` (HTTP 409), an unknown job or action a
`NotFound` (404); their messages are shown as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from opus.dashboard.context import DashboardContext
from opus.errors import NotFound

JOB_ACTIONS = ("retry", "cancel", "answer")
GLOBAL_ACTIONS = ("pause", "resume")
PLAN_DECISIONS = ("approve", "changes", "reject")


def _no_editor(_text: str) -> str:
    return ""  # the page sends the answers; an empty edit means none were given


def plan_texts(decision: str, comments: str) -> list[str]:
    """A plan decision as `opus answer --text` takes it: `approve`, `changes: …`."""
    return [f"{decision}: {comments}" if comments.strip() else decision]


def perform(ctx: DashboardContext, action: str, job_id: int | None = None,
            texts: Sequence[str] = ()) -> str:
    """Run `action` (on job `job_id` for the job actions); returns what happened.

    `texts` are the answers of `answer`, one per question in order (or a plan decision).
    """
    if action not in (JOB_ACTIONS if job_id is not None else GLOBAL_ACTIONS):
        raise NotFound(f"no action {action!r} here; jobs take {', '.join(JOB_ACTIONS)}, "
                       f"the board {', '.join(GLOBAL_ACTIONS)}")
    if job_id is not None and ctx.source.job(job_id) is None:
        raise NotFound(f"no job {job_id}")
    with ctx.acting:
        operator = ctx.operator
        if action == "retry":
            return operator.retry(str(job_id))
        if action == "cancel":
            return operator.cancel(str(job_id))
        if action == "answer":
            return operator.answer(str(job_id), list(texts), _no_editor)
        return operator.set_paused(action == "pause")
