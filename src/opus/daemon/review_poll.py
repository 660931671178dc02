"""The human gate: poll the PRs of jobs awaiting review and act on what humans decided.

merged → job done, worktree, local branch and WIP ref removed; closed → cancelled (the
branch stays, the work may still be wanted); changes requested → the job
goes back to the queue with the comments, for a new code → test → review round on the
same branch (the round cap still holds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opus.control import remove_worktree
from opus.delivery.guards import remote_head
from opus.delivery.review_loop import decide
from opus.domain import Job, JobState, Stage
from opus.errors import OpusError
from opus.git import git
from opus.pipeline.context import PipelineContext
from opus.pipeline.worktree import wip_ref
from opus.seams import PRFeedback

log = logging.getLogger(__name__)


def poll_reviews(ctx: PipelineContext, on_change: Callable[[Job, str], None]) -> int:
    """Check every job awaiting review once; returns how many changed state."""
    changed = 0
    for job in ctx.store.jobs([JobState.AWAITING_REVIEW]):
        try:
            decision = _check(ctx, job)
        except OpusError as exc:
            log.warning("cannot check the PR of %s: %s", job.fr_id, exc)
            continue
        if decision != "wait":
            changed += 1
            on_change(ctx.store.get(job.id), decision)
    return changed


def _check(ctx: PipelineContext, job: Job) -> str:
    if not job.branch:
        return "wait"
    forge = ctx.forge_for(job)
    pr = forge.find_pr(job.branch, job.base)
    if pr is None:
        return _missing_pr(ctx, job)
    delivered = [r for r in ctx.store.stage_runs(job.id) if r.ok and r.stage is Stage.DELIVER]
    since = delivered[-1].finished_at if delivered else None
    feedback = forge.feedback(pr, since)
    decision = decide(feedback)
    if decision == "done":
        ctx.store.transition(job.id, JobState.DONE)
        ctx.store.add_event(job.id, "merged", f"{pr.url} was merged")
        _remove_worktree(ctx, job)
        _forget_branch(ctx, job)
    elif decision == "cancelled":
        ctx.store.transition(job.id, JobState.CANCELLED, error="the PR was closed without merge")
        ctx.store.add_event(job.id, "closed", f"{pr.url} was closed without merge")
        _remove_worktree(ctx, job)
    elif decision == "new_round":
        spec = {**job.spec, "human_feedback": human_report(feedback)}
        ctx.store.transition(job.id, JobState.QUEUED, spec=spec)
        ctx.store.add_event(job.id, "changes_requested", f"a human asked for changes on {pr.url}")
    return decision


def _missing_pr(ctx: PipelineContext, job: Job) -> str:
    """A local PR note the human deleted is a rejection; a forge PR that vanished waits."""
    if ctx.settings.pr.provider != "local":
        log.warning("the PR of %s (%s) is not found on the forge", job.fr_id, job.branch)
        return "wait"
    ctx.store.transition(job.id, JobState.CANCELLED, error="the PR note was deleted")
    ctx.store.add_event(job.id, "closed", "the PR note was deleted from the vault")
    _remove_worktree(ctx, job)
    return "cancelled"


def human_report(feedback: PRFeedback) -> str:
    """What the coder is told after a human requested changes on the PR."""
    lines = [f"A human reviewer requested changes on the pull request. {feedback.summary}".strip()]
    for comment in feedback.comments:
        where = comment.path or "general"
        if comment.line:
            where += f":{comment.line}"
        lines.append(f"- {where}: {comment.body}")
    return "\n".join(lines)


def _remove_worktree(ctx: PipelineContext, job: Job) -> None:
    try:
        remove_worktree(ctx.settings, job)
    except OpusError as exc:
        log.warning("could not remove the worktree of %s: %s", job.fr_id, exc)


def _forget_branch(ctx: PipelineContext, job: Job) -> None:
    """After a merge, drop opus's local branch and its WIP ref on the remote.

    The local branch goes only while the remote still holds exactly its tip, so no commit
    exists only here (a squash merge does not keep the branch's commits in `base`).
    """
    remote = ctx.settings.git.remote
    try:
        if job.branch:
            local = git("rev-parse", "--verify", "--quiet", f"refs/heads/{job.branch}",
                        cwd=job.repo, check=False)
            if local and local == remote_head(job.repo, remote, job.branch):
                git("branch", "-D", job.branch, cwd=job.repo)
        git("push", "--quiet", "--no-verify", remote, f":{wip_ref(job.id)}", cwd=job.repo,
            check=False)
    except OpusError as exc:
        log.warning("could not clean up the branch of %s: %s", job.fr_id, exc)
