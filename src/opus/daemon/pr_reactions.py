"""Acting on an open PR: start a round, escalate to a person, clear, mark ready.

Each helper writes the reaction (`opus.delivery.reactions`) into the job's spec in the
same store write as the change it causes, then logs an event naming the trigger, then
notifies. The record comes first: a crash after it loses at most an event line or one
notification, never repeats a round. Callers decide *whether* to react; these helpers
make it idempotent per head commit where that matters.
"""

from __future__ import annotations

import logging

from opus.daemon.logs import JobLog
from opus.delivery.reactions import (
    ROUND_FEEDBACK,
    Kind,
    Reaction,
    escalation,
    find,
    is_ready,
    last,
    rounds_spent,
    with_reaction,
)
from opus.domain import Job, JobState
from opus.notify import needs_you, ready_to_merge
from opus.pipeline.context import PipelineContext
from opus.seams import PullRequest

log = logging.getLogger(__name__)


def _stamp(ctx: PipelineContext, reaction: Reaction) -> Reaction:
    at = ctx.clock.now().isoformat(timespec="seconds")
    return Reaction(reaction.kind, reaction.action, reaction.sha, reaction.trigger,
                    reaction.round, at)


def round_cap(ctx: PipelineContext, job: Job) -> int:
    """The job's round cap: `pipeline.max_iterations` plus rounds `opus retry` granted."""
    return ctx.settings.pipeline.max_iterations + int(job.spec.get("extra_rounds", 0))


def rounds_left(ctx: PipelineContext, job: Job, kind: Kind, limit: int) -> int:
    """Rounds `kind` may still start: at most `limit` of its own, within the round cap."""
    return max(0, min(limit - rounds_spent(job.spec, kind), round_cap(ctx, job) - job.iteration))


def start_round(
    ctx: PipelineContext,
    job: Job,
    pr: PullRequest,
    *,
    kind: Kind,
    sha: str,
    trigger: str,
    report: str,
    once_per_sha: bool = True,
) -> bool:
    """Queue a new code → test → review → deliver round on the job's branch and PR, the
    coder told `report`. False (nothing done) when `once_per_sha` and head `sha` already
    started a round of `kind`."""
    if once_per_sha and find(job.spec, kind, sha, "round") is not None:
        return False
    reaction = _stamp(ctx, Reaction(kind, "round", sha, trigger, round=job.iteration + 1))
    spec = {**with_reaction(job.spec, reaction), ROUND_FEEDBACK: report}
    ctx.store.transition(job.id, JobState.QUEUED, spec=spec, error=None)
    _record(
        ctx, job, f"{kind}_round",
        f"round {reaction.round} on {pr.url} for {_short(sha)}: {trigger}",
    )  # fmt: skip
    return True


def escalate(
    ctx: PipelineContext,
    job: Job,
    pr: PullRequest,
    *,
    kind: Kind,
    sha: str,
    trigger: str,
    what: str,
    todo: str,
) -> bool:
    """Hand the PR to a person: the FR's `error:` and `opus status` say `what`, and one
    notification goes out. False when an escalation of `kind` already stands."""
    if escalation(job.spec, kind) is not None:
        return False
    reaction = _stamp(ctx, Reaction(kind, "escalated", sha, trigger))
    error = f"{what} on PR {pr.number} — needs you: {trigger} ({_short(sha)}); {todo}"
    ctx.store.update(job.id, spec=with_reaction(job.spec, reaction), error=error)
    _record(ctx, job, f"{kind}_escalated", f"{what} on {pr.url}: {trigger} "
                                                    f"({_short(sha)})")
    ctx.notifier.notify(*needs_you(job.fr_id, pr.number, pr.url, what=what, detail=trigger,
                                   todo=todo))
    return True


def clear(ctx: PipelineContext, job: Job, *, kind: Kind, sha: str, why: str) -> bool:
    """An escalation of `kind` no longer holds (`why`): forget it and the FR's error."""
    if escalation(job.spec, kind) is None:
        return False
    reaction = _stamp(ctx, Reaction(kind, "cleared", sha, why))
    ctx.store.update(job.id, spec=with_reaction(job.spec, reaction), error=None)
    _record(ctx, job, f"{kind}_cleared", f"{why} ({_short(sha)})")
    return True


def mark_ready(ctx: PipelineContext, job: Job, pr: PullRequest, *, sha: str, trigger: str) -> bool:
    """Approved and green: FR `stage: ready`, and one "ready to merge" notification per
    head commit. True when it notified (False: ready already, or this head announced)."""
    latest = last(job.spec, "ready")
    if latest is not None and latest.action == "ready" and latest.sha == sha:
        return False
    announced = find(job.spec, "ready", sha, "ready") is not None
    reaction = _stamp(ctx, Reaction("ready", "ready", sha, trigger))
    ctx.store.update(job.id, spec=with_reaction(job.spec, reaction))
    _record(ctx, job, "ready", f"{pr.url} is ready to merge: {trigger} "
                                         f"({_short(sha)})")
    if not announced:
        ctx.notifier.notify(*ready_to_merge(job.fr_id, pr.number, pr.url))
    return not announced


def unmark_ready(ctx: PipelineContext, job: Job, *, sha: str, why: str) -> bool:
    """The PR stopped being ready (new head, approval gone): the FR's stage follows."""
    if not is_ready(job.spec):
        return False
    reaction = _stamp(ctx, Reaction("ready", "cleared", sha, why))
    ctx.store.update(job.id, spec=with_reaction(job.spec, reaction))
    _record(ctx, job, "not_ready", f"{why} ({_short(sha)})")
    return True


def note(ctx: PipelineContext, job: Job, kind: str, message: str) -> None:
    """Something opus saw on the PR and did nothing about, as an event and a log line."""
    _record(ctx, job, kind, message)


def _record(ctx: PipelineContext, job: Job, kind: str, message: str) -> None:
    """The reaction as an event and as a line of the job's log (`opus logs FR`)."""
    ctx.store.add_event(job.id, kind, message)
    try:
        JobLog.for_job(ctx.settings.state_dir, job.id, clock=ctx.clock).write(f"PR: {message}")
    except OSError as exc:  # the event holds it; a full disk must not stop the poller
        log.warning("could not write the log of %s: %s", job.fr_id, exc)


def _short(sha: str) -> str:
    return sha[:10] if sha else "unknown head"
