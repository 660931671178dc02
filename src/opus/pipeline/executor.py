"""Run one job from its first incomplete stage to a delivered branch (or a failure).

`run_job` is called by a job process (or a worker thread) with a claimed job. It checks
the stop flag between stages, so a stop at a checkpoint (preemption) loses no work; a stop
now (shutdown, cancel, stuck) kills the job process mid-stage, and a stage told to stop
now is never committed.
Terminal outcomes are written to the store here; a stop is handed back to the caller,
which decides whether the job goes back to the queue or fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opus.conversation.waiting import Waiting, start_waiting
from opus.delivery.base_merge import merge_message, merging
from opus.delivery.reactions import (
    GIVEN_BACK,
    Reaction,
    open_round,
    pending_feedback,
)
from opus.domain import Job, JobState, Stage, StageRun
from opus.engines.base import AgentFailed
from opus.engines.pricing import format_usd
from opus.errors import (
    BudgetExceeded,
    DeliveryBlocked,
    EngineError,
    GitError,
    NotReady,
    StageFailed,
)
from opus.git import git
from opus.pipeline import asking as gate
from opus.pipeline.base_sync import (
    ConflictUnresolved,
    base_merge,
    check_resolved,
    consumed,
    merge_moved_base,
)
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.handback import finish, hand_back, handed_back
from opus.pipeline.metering import StageMeter
from opus.pipeline.progress import Exhausted, Finished, Step, next_step
from opus.pipeline.stages import Interrupted, StageOutcome, interrupted, run_stage
from opus.pipeline.worktree import Worktree, branch_name
from opus.seams import AgentResult
from opus.trace import mark


@dataclass(frozen=True)
class Outcome:
    kind: Literal["awaiting_review", "failed", "stopped", "escalated", "waiting"]
    """`escalated`: a round started on the open PR (a change request, CI, the base) ran
    out of rounds, or the coder could not resolve a conflict with the moved base; the PR
    went back to a person (`opus.pipeline.handback`, `_unresolved`), the job waits in
    awaiting_review.
    `waiting`: the job waits for a person's answers or plan decision (`waiting_input`)."""
    detail: str = ""


def run_job(job: Job, ctx: PipelineContext, control: JobControl) -> Outcome:
    """Advance `job` until it is delivered, fails, waits for a person, or is asked to stop."""
    try:
        asked = gate.questions_before_plan(job, ctx)
        if asked is not None:  # before any worktree or token: waiting costs nothing
            return _wait(job, ctx, control, asked)
        worktree = _prepare(job, ctx, control)
        # The worker that claimed the job: stage spend is metered only while it holds it.
        return _advance(ctx.store.get(job.id), ctx, control, worktree, job.worker)
    except gate.WaitForInput as exc:
        return _wait(ctx.store.get(job.id), ctx, control, exc.waiting)
    except Interrupted as exc:
        control.log(str(exc))
        return Outcome("stopped", control.stop_reason or str(exc))
    except AgentFailed as exc:
        _notify_if_budget(job, ctx, exc.partial.stop_reason == "budget")
        return _fail(job, ctx, control, str(exc))
    except BudgetExceeded as exc:
        _notify_if_budget(job, ctx, True)
        return _fail(job, ctx, control, str(exc))
    except ConflictUnresolved as exc:
        return _unresolved(job, ctx, control, exc)
    except (NotReady, StageFailed, DeliveryBlocked) as exc:
        # A guard's refusal is final: a retry would be refused the same way.
        return _fail(job, ctx, control, str(exc))


def _prepare(job: Job, ctx: PipelineContext, control: JobControl) -> Worktree:
    runs = ctx.store.stage_runs(job.id)
    if not any(run.ok for run in runs):
        _check_ready(job, ctx)
    branch = job.branch or _fresh_branch(ctx.store.get(job.id), ctx)
    if job.branch != branch:
        ctx.store.update(job.id, branch=branch)
    worktree = Worktree.ensure(
        job.repo, ctx.settings.state_dir, job.id, branch, job.base, remote=ctx.settings.git.remote
    )
    _drop_stale_index_lock(worktree.path)
    checkpoint = _last_commit(runs)
    if checkpoint:
        # A stage that died half-way left edits behind; start again from its checkpoint.
        git("reset", "--quiet", "--hard", checkpoint, cwd=worktree.path)
        git("clean", "-fdq", cwd=worktree.path)
    else:
        worktree.discard_uncommitted()
    if pending_feedback(job.spec) is not None:
        _adopt_human_commits(ctx, worktree, branch, control)
    merge_moved_base(ctx.store.get(job.id), ctx, worktree, control)
    control.log(f"worktree {worktree.path} on {branch}")
    mark("worktree ready")
    from opus.pipeline.preflight import prepare

    prepare(ctx.store.get(job.id), ctx, control, worktree)
    mark("preflight done")
    return worktree


def _fresh_branch(job: Job, ctx: PipelineContext) -> str:
    """A new job's branch, starting from its base (an earlier attempt's is not reused)."""
    from opus.pipeline.worktree import fresh_branch

    def in_use(branch: str) -> bool:
        pr = ctx.forge_for(job).find_pr(branch)
        return pr is not None and pr.state == "open"

    name = branch_name(ctx.settings.git.branch_prefix, job.fr_id, job.title)
    base = f"refs/heads/{job.base}" if job.base else "HEAD"
    return fresh_branch(job.repo, name, base=base, in_use=in_use)


def _adopt_human_commits(
    ctx: PipelineContext, wt: Worktree, branch: str, control: JobControl
) -> None:
    """Build a round started on the open PR on what a human pushed to its branch.

    Only a fast-forward is taken: if the remote branch does not descend from our
    checkpoint, it is left alone and the push guard will say whose commits are in the way.
    """
    remote = ctx.settings.git.remote
    if not _has_remote(wt, remote):
        return
    git("fetch", "--quiet", remote, f"refs/heads/{branch}", cwd=wt.path, check=False)
    theirs = git("rev-parse", "--verify", "--quiet", "FETCH_HEAD", cwd=wt.path, check=False)
    ours = wt.head()
    if not theirs or theirs == ours:
        return
    try:
        git("merge-base", "--is-ancestor", ours, theirs, cwd=wt.path)
    except GitError:
        return
    git("reset", "--quiet", "--hard", theirs, cwd=wt.path)
    control.log(f"building on commits pushed to {branch} by a human ({theirs[:10]})")


def _drop_stale_index_lock(path: Path) -> None:
    """A job killed inside a git command leaves `index.lock`; the job is ours (we hold its
    lease), so no other git can be working in its worktree and the lock is residue."""
    lock = Path(git("rev-parse", "--git-path", "index.lock", cwd=path))
    lock = lock if lock.is_absolute() else path / lock
    lock.unlink(missing_ok=True)


def _has_remote(wt: Worktree, remote: str) -> bool:
    return remote in git("remote", cwd=wt.path).split()


def _check_ready(job: Job, ctx: PipelineContext) -> None:
    from opus.pipeline.readiness import check_ready

    remote = None if ctx.settings.pr.provider == "local" else ctx.settings.git.remote
    info = check_ready(job.repo, job.base, job.spec.get("test_command"), remote=remote)
    if job.base != info.base_branch:
        ctx.store.update(job.id, base=info.base_branch)


def _last_commit(runs: Sequence[StageRun]) -> str | None:
    # A stage that ended by asking a person kept its work too (a coder's edits so far).
    commits = [run.commit for run in runs if (run.ok or run.output.get("asked")) and run.commit]
    return commits[-1] if commits else None


def _advance(
    job: Job, ctx: PipelineContext, control: JobControl, wt: Worktree, holder: str | None
) -> Outcome:
    while True:
        runs = ctx.store.stage_runs(job.id)
        progress = next_step(
            runs,
            ctx.settings.pipeline.max_iterations + int(job.spec.get("extra_rounds", 0)),
            round_feedback=pending_feedback(job.spec),
        )
        progress = gate.after_plan(job, ctx, runs, progress)  # approval, or a re-plan
        if isinstance(progress, Finished):
            if handed_back(runs) is not None:  # a restart between checkpoint and escalation
                return Outcome("escalated", finish(job, ctx, control))
            return _delivered(job, ctx, control)
        if isinstance(progress, Exhausted):
            reaction = _reaction_round(job, runs)
            if reaction is not None:
                return Outcome("escalated", hand_back(
                    job, ctx, control, wt, reaction=reaction, rounds=progress.iteration,
                    report=progress.report))  # fmt: skip
            from opus.pipeline.sandbox_hints import hint_of

            hint = hint_of(progress.report)
            reason = (
                f"no passing round after {progress.iteration} iteration(s)"
                f"{'; ' + hint if hint else ''}; last report:\n{progress.report}"
            )
            return _fail(job, ctx, control, reason)
        if control.should_stop():
            return Outcome("stopped", control.stop_reason or "")
        _check_budget(job, ctx)
        job = _run_step(job, ctx, control, wt, progress, holder=holder)


def _reaction_round(job: Job, runs: Sequence[StageRun]) -> Reaction | None:
    """The reaction (a review, CI, a conflict) whose round is under way, if one is (see
    handback): the first delivery's rounds have none."""
    delivered = [run.iteration for run in runs if run.ok and run.stage is Stage.DELIVER]
    if not delivered:
        return None
    reaction = open_round(job.spec, delivered[-1])
    return reaction if reaction is not None and reaction.kind in GIVEN_BACK else None


def _run_step(
    job: Job,
    ctx: PipelineContext,
    control: JobControl,
    wt: Worktree,
    step: Step,
    *,
    holder: str | None,
) -> Job:
    job = ctx.store.update(job.id, stage=step.stage, iteration=step.iteration)
    control.begin_stage(step.stage.value)
    control.log(f"stage {step.stage.value} (round {step.iteration}) started")
    meter = StageMeter(ctx.store, ctx.clock, job.id, step.stage, step.iteration,
                       holder=holder, started=ctx.clock.now())
    try:
        return _complete_step(job, ctx, control, wt, step, meter=meter)
    except (AgentFailed, EngineError, Interrupted) as exc:
        # What the stage spent rides on the error: recorded here, in the job's own process
        # and in the run that metered it, so it is counted exactly once. (An error without
        # it, or a kill, leaves the metered run as it is: it holds every billed call.)
        if exc.partial is not None:
            _record_spent(job, ctx, step, meter, exc.partial)
        raise


def _complete_step(
    job: Job, ctx: PipelineContext, control: JobControl, wt: Worktree, step: Step, *,
    meter: StageMeter,
) -> Job:  # fmt: skip
    outcome = run_stage(job, ctx, control, wt, step, budget_usd=_remaining_usd(job, ctx),
                        on_spend=meter)  # fmt: skip
    if control.must_stop_now():
        # Cancelled, stopping or stuck while the stage ran: nothing of it is kept but
        # what its agent spent.
        raise _interrupted(step, control, outcome)
    if step.stage is Stage.CODE:
        _check_resolved(job, ctx, wt, step, outcome, meter=meter)
    commit = _checkpoint_commit(job, ctx, wt, step, outcome)
    if outcome.asked:
        # The agent asked a person: what it spent (and a coder's work) is kept; the same
        # stage runs again, with the answers, once they come.
        _record(job, ctx, step, outcome, meter, commit=commit, ok=False)
        raise gate.WaitForInput(gate.agent_questions(job, ctx, step, outcome.asked))
    _record(job, ctx, step, outcome, meter, commit=commit)
    control.log(f"stage {step.stage.value} (round {step.iteration}) completed: {outcome.note}")
    if step.stage is Stage.CODE and pending_feedback(job.spec) is not None:
        job = ctx.store.update(job.id, spec=consumed(job.spec))
    if outcome.stop:
        # The stage kept its work (committed above) but cannot go on: budget, or stuck.
        raise outcome.stop
    return ctx.store.get(job.id)


def _interrupted(step: Step, control: JobControl, outcome: StageOutcome) -> Interrupted:
    """The stage's agent ended, but a stop came while the stage ran: its work is dropped,
    what it spent rides on the error for `_run_step` to record."""
    # The agent ended normally (submitted or ended its turn); "end_turn" stands for both.
    spent = AgentResult("end_turn", {}, outcome.usage, outcome.cost_usd)
    return interrupted(f"stage {step.stage.value} stopped: {control.stop_reason}", spent)


def _checkpoint_commit(
    job: Job, ctx: PipelineContext, wt: Worktree, step: Step, outcome: StageOutcome
) -> str:
    author = (ctx.settings.git.author_name, ctx.settings.git.author_email)
    if step.stage is Stage.CODE:
        message = f"{job.fr_id}: {job.title} (round {step.iteration})\n\n{outcome.note}"
        info = base_merge(job.spec)
        if info is not None and merging(wt.path):
            conflicts = tuple(str(path) for path in info.get("conflicts") or ())
            merge = merge_message(str(info.get("label")), str(info["sha"]), wt.branch, conflicts)
            message = f"{merge}\n\n{outcome.note}"
        wt.commit(message, job_id=job.id, author=author)
    head = wt.head()
    _push_wip(job, ctx, wt)
    return head


def _push_wip(job: Job, ctx: PipelineContext, wt: Worktree) -> None:
    remote = ctx.settings.git.remote
    if _has_remote(wt, remote):
        wt.push_wip(remote, job.id)


def _record(
    job: Job,
    ctx: PipelineContext,
    step: Step,
    outcome: StageOutcome,
    meter: StageMeter,
    *,
    commit: str,
    ok: bool = True,
) -> None:
    meter.record(
        StageRun(
            job_id=job.id,
            stage=step.stage,
            iteration=step.iteration,
            ok=ok,
            output=outcome.output,
            usage=outcome.usage,
            cost_usd=outcome.cost_usd,
            prompt_sha256=outcome.prompt_sha256,
            commit=commit,
            started_at=meter.started,
            finished_at=ctx.clock.now(),
        )
    )


def _record_spent(
    job: Job, ctx: PipelineContext, step: Step, meter: StageMeter, partial: AgentResult
) -> None:
    """Account for what a failed agent stage spent (a failed run is not a checkpoint):
    an `AgentFailed`'s, an `EngineError`'s or an `Interrupted`'s `partial`, the stage's
    totals, in the run that metered them."""
    meter.record(
        StageRun(
            job_id=job.id,
            stage=step.stage,
            iteration=step.iteration,
            ok=False,
            output={"report": partial.report, "stop_reason": partial.stop_reason},
            usage=partial.usage,
            cost_usd=partial.cost_usd,
            started_at=meter.started,
            finished_at=ctx.clock.now(),
        )
    )


def _notify_if_budget(job: Job, ctx: PipelineContext, hit: bool) -> None:
    if hit:
        from opus.notify import budget_hit

        spent = ctx.store.get(job.id).cost_usd
        ctx.notifier.notify(*budget_hit(job.fr_id, spent, _ceiling_usd(job, ctx)))


def _ceiling_usd(job: Job, ctx: PipelineContext) -> float:
    own = job.spec.get("budget_usd")
    ceiling = ctx.settings.budget.job_usd
    return min(ceiling, float(own)) if own is not None else ceiling


def _remaining_usd(job: Job, ctx: PipelineContext) -> float:
    return max(0.0, _ceiling_usd(job, ctx) - job.cost_usd)


def _check_budget(job: Job, ctx: PipelineContext) -> None:
    ceiling = _ceiling_usd(job, ctx)
    if job.cost_usd >= ceiling > 0 or (ceiling == 0 and job.cost_usd > 0):
        raise BudgetExceeded(
            f"job cost {format_usd(job.cost_usd)} reached its ceiling {format_usd(ceiling)}; raise "
            "`budget:` in the note or `budget.job_usd`, then `opus retry`"
        )
    minutes = job.spec.get("budget_minutes")
    if minutes and job.started_at is not None:
        elapsed = (ctx.clock.now() - job.started_at).total_seconds() / 60
        if elapsed > float(minutes):
            raise BudgetExceeded(
                f"job ran {elapsed:.0f} min, over its budget of {minutes} min; raise "
                "`budget: {minutes: …}` in the note, then `opus retry`"
            )


def _delivered(job: Job, ctx: PipelineContext, control: JobControl) -> Outcome:
    job = ctx.store.get(job.id)
    ctx.store.transition(job.id, JobState.AWAITING_REVIEW, stage=Stage.DELIVER)
    ctx.store.add_event(job.id, "awaiting_review", f"PR ready for review: {job.pr_url}")
    control.log(f"delivered: {job.pr_url}")
    return Outcome("awaiting_review", job.pr_url or "")


def _wait(job: Job, ctx: PipelineContext, control: JobControl, waiting: Waiting) -> Outcome:
    """Hand the job to a person: no lease, no slot, no process until they answer."""
    start_waiting(ctx.store, job, waiting)
    what = "a plan decision" if waiting.kind == "plan" else f"{len(waiting.questions)} answer(s)"
    control.log(f"waiting for {what} (asked by {waiting.asker} at stage {waiting.stage})")
    return Outcome("waiting", what)


def _check_resolved(
    job: Job, ctx: PipelineContext, wt: Worktree, step: Step, outcome: StageOutcome, *,
    meter: StageMeter,
) -> None:  # fmt: skip
    """A coder that left conflict markers: its spend is kept, the merge aborted."""
    try:
        check_resolved(job, wt)
    except ConflictUnresolved:
        meter.record(StageRun(
            job_id=job.id, stage=step.stage, iteration=step.iteration, ok=False,
            output={"report": "conflict markers left", **outcome.output},
            usage=outcome.usage, cost_usd=outcome.cost_usd, finished_at=ctx.clock.now(),
        ))  # fmt: skip
        raise


def _unresolved(
    job: Job, ctx: PipelineContext, control: JobControl, exc: ConflictUnresolved
) -> Outcome:
    """The base merge needs a person: the PR stays as delivered and waits for review,
    and `escalate` says so once (notification, FR `error:`, `opus status`)."""
    from opus.daemon.pr_reactions import escalate

    control.log(f"needs a person: {exc}")
    job = ctx.store.get(job.id)
    info = base_merge(job.spec) or {}
    label = str(info.get("label") or job.base or "the base")
    ctx.store.transition(job.id, JobState.AWAITING_REVIEW, stage=Stage.DELIVER,
                         spec=consumed(job.spec))  # fmt: skip
    pr = ctx.forge_for(job).find_pr(job.branch or "", job.base)
    if pr is not None:
        escalate(
            ctx, ctx.store.get(job.id), pr, kind="conflict", sha=str(info.get("head") or ""),
            trigger=f"conflicts with {label} in {', '.join(exc.files)}",
            what=f"merge conflict with {label}",
            todo=f"merge {label} into {job.branch}, resolve the conflicts and push",
        )  # fmt: skip
    return Outcome("escalated", str(exc))


def _fail(job: Job, ctx: PipelineContext, control: JobControl, reason: str) -> Outcome:
    control.log(f"failed: {reason}")
    ctx.store.transition(job.id, JobState.FAILED, error=reason)
    ctx.store.add_event(job.id, "failed", reason)
    from opus.notify import job_failed

    ctx.notifier.notify(*job_failed(job.fr_id, reason))
    return Outcome("failed", reason)

