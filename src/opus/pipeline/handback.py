"""A round started on the open PR (failing CI, a conflict) that ran out of rounds: the
PR goes back to a person instead of the job failing.

The PR stays open at what opus last delivered (the round's unpushed commits stay in the
worktree); the job waits in `awaiting_review` again with a standing escalation, so the
person hears "… — needs you" once, the FR's `error:` and `opus status` say it, and
opus reacts to nothing more on that PR until the escalation clears (green CI).
"""

from __future__ import annotations

from opus.delivery.reactions import GIVEN_BACK, Reaction
from opus.domain import Job, JobState, Stage
from opus.pipeline.context import JobControl, PipelineContext
from opus.seams import PullRequest


def hand_back(
    job: Job, ctx: PipelineContext, control: JobControl, reaction: Reaction, rounds: int
) -> str:
    """Escalate `reaction`'s PR after `rounds` rounds; returns the reason logged."""
    from opus.daemon.pr_reactions import escalate

    job = ctx.store.transition(job.id, JobState.AWAITING_REVIEW, stage=Stage.DELIVER)
    what = GIVEN_BACK.get(reaction.kind, "The PR needs work")
    todo = (f"opus's rounds could not pass its own tests and review within {rounds} "
            "rounds (`pipeline.max_iterations`); fix the branch by hand")  # fmt: skip
    escalate(ctx, job, _pull(job, ctx), kind=reaction.kind, sha=reaction.sha,
             trigger=reaction.trigger, what=what, todo=todo)  # fmt: skip
    reason = f"{what}: {reaction.trigger}; {todo}"
    control.log(f"handed back to a person: {reason}")
    return reason


def _pull(job: Job, ctx: PipelineContext) -> PullRequest:
    found = ctx.forge_for(job).find_pr(job.branch or "", job.base) if job.branch else None
    if found is not None:
        return found
    return PullRequest(number=0, url=job.pr_url or "", branch=job.branch or "",
                       base=job.base or "")  # fmt: skip
