"""An open PR that no human has asked changes of: conflicts, checks, then "ready".

`react_to_pr` runs the reactors in order; the first that acts or holds decides the pass
(a conflict is handled before the checks of a commit that cannot merge anyway). When
none has anything to say, the PR is ready to merge once a human approved it.

A reactor is `(ctx, job, forge, pr, feedback) -> str | None`: None when all is well on
its side, else the pass's decision — `"new_round"`, `"escalated"`, or `"wait"` (holding:
pending checks, an escalation standing). Anything but `"wait"` counts as a change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opus.daemon.base_watch import react_to_base
from opus.daemon.ci_watch import react_to_ci
from opus.daemon.pr_reactions import clear, mark_ready, unmark_ready
from opus.domain import Job
from opus.pipeline.context import PipelineContext
from opus.seams import Forge, PRFeedback, PullRequest

Reactor = Callable[[PipelineContext, Job, Forge, PullRequest, PRFeedback], str | None]

REACTORS: Sequence[Reactor] = (react_to_base, react_to_ci)
"""In order: the first reactor that returns a decision ends the pass."""


def react_to_pr(
    ctx: PipelineContext, job: Job, forge: Forge, pr: PullRequest, feedback: PRFeedback
) -> str:
    """The pass's decision for an open PR without a new change request."""
    sha = feedback.head or ""
    for reactor in REACTORS:
        job = ctx.store.get(job.id)  # the reactor before may have recorded something
        decision = reactor(ctx, job, forge, pr, feedback)
        if decision is not None:
            unmark_ready(ctx, ctx.store.get(job.id), sha=sha, why="no longer ready to merge")
            return decision
    job = ctx.store.get(job.id)
    if not feedback.approved:
        unmark_ready(ctx, job, sha=sha, why="no approval stands")
        return "wait"
    # A PR handed back after a reviewer's last change request: approved, it is settled.
    clear(ctx, job, kind="review", sha=sha, why="approved")
    job = ctx.store.get(job.id)
    checks = "required checks green" if ctx.settings.pr.ci != "ignore" else "checks not read"
    return "ready" if mark_ready(ctx, job, pr, sha=sha, trigger=f"approved, {checks}") else "wait"
