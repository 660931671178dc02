"""A round started on the open PR (a human's change request, failing CI, a conflict with
the base) that ran out of rounds: the PR goes back to a person instead of the job failing.

The job stays delivered: `awaiting_review` with the PR open at what opus last pushed, a
standing escalation of the round's kind (one "… — needs you" notification, the FR's
`error:` line, `opus status`, the board's "Needs you") and a comment on the PR saying
opus stopped after N rounds. opus reacts to nothing more of that kind until the
escalation clears (CI green, the base merged, an approval).

The end state is clean: nothing the exhausted rounds made is pushed (it failed opus's own
tests or review), the worktree is reset to the pushed head (a merge in progress ends
with it), and a DELIVER checkpoint records that head (`output.handed_back`), so the
next round — an update merge, a retry's fresh rounds — starts from what the PR shows.
The last attempt stays reachable at the job's WIP ref until the next checkpoint.

The checkpoint comes first; `finish` (escalate, back to `awaiting_review`, the comment)
is idempotent, and the executor calls it again when a restart finds the checkpoint with
the job still running.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from opus.delivery.reactions import GIVEN_BACK, Kind, Reaction
from opus.domain import Job, JobState, Stage, StageRun
from opus.git import git
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.worktree import Worktree, wip_ref
from opus.seams import PullRequest

HANDED_BACK = "handed_back"
"""Key in a DELIVER checkpoint's output: the kind of the round handed back."""
REPORT_CHARS = 1_500


def hand_back(
    job: Job,
    ctx: PipelineContext,
    control: JobControl,
    wt: Worktree,
    *,
    reaction: Reaction,
    rounds: int,
    report: str,
) -> str:
    """Give the PR back after round `rounds` exhausted the cap; returns the reason logged."""
    runs = ctx.store.stage_runs(job.id)
    pushed = _pushed_head(runs)
    attempt = wt.head()
    if pushed and attempt != pushed:
        git("reset", "--quiet", "--hard", pushed, cwd=wt.path)  # ends a merge in progress
    git("clean", "-fdq", cwd=wt.path)
    now = ctx.clock.now()
    ctx.store.record_stage(StageRun(
        job_id=job.id, stage=Stage.DELIVER, iteration=rounds, ok=True,
        output={HANDED_BACK: reaction.kind, "rounds": rounds, "pushed": False,
                "attempt": attempt if attempt != pushed else "", "report": _tail(report),
                "trigger": reaction.trigger, "sha": reaction.sha},
        commit=pushed or attempt, started_at=now, finished_at=now,
    ))  # fmt: skip
    control.log(f"stopped after round {rounds}; the worktree is back at the pushed head "
                f"{(pushed or attempt)[:10]}")  # fmt: skip
    return finish(ctx.store.get(job.id), ctx, control)


def handed_back(runs: Sequence[StageRun]) -> StageRun | None:
    """The hand-back checkpoint, when it is the job's newest delivery."""
    delivered = [run for run in runs if run.ok and run.stage is Stage.DELIVER]
    if delivered and delivered[-1].output.get(HANDED_BACK):
        return delivered[-1]
    return None


def finish(job: Job, ctx: PipelineContext, control: JobControl) -> str:
    """Escalate, wait for review again, and tell the PR (after the checkpoint)."""
    from opus.daemon.pr_reactions import escalate

    run = handed_back(ctx.store.stage_runs(job.id))
    assert run is not None, "finish() follows a hand-back checkpoint"
    out = run.output
    kind = str(out[HANDED_BACK])
    what = GIVEN_BACK.get(kind, "The PR needs work")
    rounds = int(out.get("rounds") or run.iteration)
    todo = (f"opus stopped after round {rounds} (`pipeline.max_iterations`): its rounds "
            "could not pass its own tests and review; the PR is yours")  # fmt: skip
    pr = _pull(job, ctx)
    trigger = str(out.get("trigger") or what)
    acted = escalate(ctx, job, pr, kind=cast(Kind, kind), sha=str(out.get("sha") or ""),
                     trigger=trigger, what=what, todo=todo)  # fmt: skip
    job = ctx.store.get(job.id)
    if job.state is JobState.RUNNING:
        ctx.store.transition(job.id, JobState.AWAITING_REVIEW, stage=Stage.DELIVER)
    if acted and pr.number:
        ctx.forge_for(job).comment(pr, stopped_comment(
            job, rounds=rounds, what=what, trigger=trigger, head=run.commit or "",
            attempt=str(out.get("attempt") or ""), report=str(out.get("report") or "")))
    reason = f"{what}: {trigger}; {todo}"
    control.log(f"handed back to a person: {reason}")
    return reason


def stopped_comment(
    job: Job, *, rounds: int, what: str, trigger: str, head: str, attempt: str = "",
    report: str = "",
) -> str:
    """The PR comment: opus stopped, what stands on the branch, what it last tried
    (`attempt`, `report`: the round that could not pass; none when no round ran)."""
    used = f"{rounds} round{'' if rounds == 1 else 's'} (`pipeline.max_iterations`)"
    why = (f"its last round could not pass its own tests and review within {used}"
           if attempt or report else f"it has used its {used}")  # fmt: skip
    lines = [
        f"### opus — stopped after round {rounds}", "",
        f"{what}: {trigger}.", "",
        f"opus stops working on this PR and hands it to you: {why}.",
        f"Nothing more was pushed: the branch stays at {head[:10] or 'its last push'}.",
    ]  # fmt: skip
    if attempt:
        lines.append(f"The last attempt ({attempt[:10]}) is kept at `{wip_ref(job.id)}` "
                     "for a look, until opus's next checkpoint.")  # fmt: skip
    if report.strip():
        lines += ["", "Last report:", "", "```", report.strip(), "```"]
    return "\n".join(lines) + "\n"


def out_of_rounds(ctx: PipelineContext, job: Job, pr: PullRequest, *, sha: str) -> bool:
    """A change request with no round left: hand the PR back without running anything.
    False when it was handed back already (the escalation stands)."""
    from opus.daemon.pr_reactions import escalate, round_cap

    rounds = round_cap(ctx, job)
    what, trigger = GIVEN_BACK["review"], "a reviewer requested changes"
    todo = (f"opus stopped after round {rounds}, its last (`pipeline.max_iterations`); the "
            "PR is yours")  # fmt: skip
    if not escalate(ctx, job, pr, kind="review", sha=sha, trigger=trigger, what=what,
                    todo=todo):  # fmt: skip
        return False
    ctx.forge_for(job).comment(pr, stopped_comment(job, rounds=rounds, what=what,
                                                   trigger=trigger, head=sha))  # fmt: skip
    return True


def _pushed_head(runs: Sequence[StageRun]) -> str | None:
    delivered = [run.commit for run in runs if run.ok and run.stage is Stage.DELIVER]
    return delivered[-1] if delivered and delivered[-1] else None


def _tail(report: str) -> str:
    text = report.strip()
    return text if len(text) <= REPORT_CHARS else "[...]\n" + text[-REPORT_CHARS:]


def _pull(job: Job, ctx: PipelineContext) -> PullRequest:
    found = ctx.forge_for(job).find_pr(job.branch or "", job.base) if job.branch else None
    if found is not None:
        return found
    return PullRequest(number=0, url=job.pr_url or "", branch=job.branch or "",
                       base=job.base or "")  # fmt: skip
