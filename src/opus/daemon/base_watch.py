"""An open PR whose base moved: merge the base into the branch, with the coder when it
conflicts (a reactor of `opus.daemon.pr_gate`, run before the CI reactor).

Each pass fetches the base and the PR branch and asks git (`git merge-tree`) whether the
branch is behind and whether a merge would conflict; the forge's `mergeable` is read
only when git finds it clean. Then:

- conflicts → a `conflict` round (the coder resolves the merge, tests, review, push),
  at most `pr.ci_rounds` of them and within the job's round cap, then "merge conflict —
  needs you", once;
- clean, and the forge cannot merge it or `pr.update_branch = "when-behind"` → an
  `update` round: the merge commit alone, tests, push — no agent, no round counted;
- clean otherwise, or up to date → nothing (an escalation that no longer holds clears).

Once per PR head commit: a round's push gives the PR a new head, and a round that could
not finish stands as an escalation until a person's push clears it.
"""

from __future__ import annotations

import logging

from opus.daemon.pr_reactions import clear, escalate, rounds_left, start_round
from opus.delivery.base_merge import BaseState, base_state
from opus.delivery.reactions import Kind, escalation, find
from opus.domain import Job
from opus.pipeline.base_sync import BASE_MERGE
from opus.pipeline.context import PipelineContext
from opus.seams import Forge, PRFeedback, PullRequest

log = logging.getLogger(__name__)


def react_to_base(
    ctx: PipelineContext, job: Job, forge: Forge, pr: PullRequest, feedback: PRFeedback
) -> str | None:
    """The base reactor of `opus.daemon.pr_gate` (None: the branch can merge as it is)."""
    if not job.branch or not job.base:
        return None
    state = base_state(job.repo, job.branch, job.base, remote=ctx.settings.git.remote)
    if state is None:
        return None
    if not state.behind:
        clear(ctx, job, kind="conflict", sha=state.head_sha, why=f"up to date with {state.label}")
        return None
    if escalation(job.spec, "conflict") is not None:
        return "wait"  # a person was asked to merge; their push clears it
    if state.conflicts:
        return _conflict(ctx, job, pr, state)
    if ctx.settings.pr.update_branch == "when-behind" or forge.mergeable(pr) is False:
        return _update(ctx, job, pr, state)
    return None


def _conflict(ctx: PipelineContext, job: Job, pr: PullRequest, state: BaseState) -> str:
    trigger = f"{state.label} at {state.base_sha[:10]} conflicts in {', '.join(state.conflicts)}"
    if find(job.spec, "conflict", state.head_sha, "round") is not None:
        return "wait"  # this head already had its round
    if rounds_left(ctx, job, "conflict", ctx.settings.pr.ci_rounds) <= 0:
        escalate(ctx, job, pr, kind="conflict", sha=state.head_sha, trigger=trigger,
                 what=f"merge conflict with {state.label}",
                 todo=f"merge {state.label} into {job.branch}, resolve the conflicts and "
                      "push")  # fmt: skip
        return "escalated"
    return _round(ctx, job, pr, state, kind="conflict", trigger=trigger)


def _update(ctx: PipelineContext, job: Job, pr: PullRequest, state: BaseState) -> str:
    if find(job.spec, "update", state.head_sha, "round") is not None:
        return "wait"
    trigger = f"{state.label} moved to {state.base_sha[:10]}; merges cleanly"
    return _round(ctx, job, pr, state, kind="update", trigger=trigger)


def _round(
    ctx: PipelineContext, job: Job, pr: PullRequest, state: BaseState, *, kind: Kind,
    trigger: str,
) -> str:
    info = {"sha": state.base_sha, "label": state.label, "head": state.head_sha,
            "conflicts": list(state.conflicts)}  # fmt: skip
    job = ctx.store.update(job.id, spec={**job.spec, BASE_MERGE: info})
    report = f"The base moved: {trigger}. Merge it into the branch."
    started = start_round(ctx, job, pr, kind=kind, sha=state.head_sha, trigger=trigger,
                          report=report)  # fmt: skip
    if started:
        log.info("%s: %s round for %s", job.fr_id, kind, trigger)
    return "new_round" if started else "wait"
