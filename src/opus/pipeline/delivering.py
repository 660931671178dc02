"""The deliver stage: gather the job's story for the PR body, then guards, push, PR.

A round started on the open PR (a human's review, failing CI, a conflict) ends with a
comment on the same PR saying why it ran and what changed; the first delivery opens the
PR (or finds it, after a restart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opus.conversation.waiting import conversation_of, render_conversation
from opus.delivery.deliver import DeliveryReport, deliver
from opus.delivery.reactions import open_round, reason_line
from opus.delivery.review_loop import render_round_comment
from opus.domain import Job, Stage, StageRun
from opus.git import git
from opus.pipeline.context import PipelineContext
from opus.pipeline.preflight import CONFIG_CHANGED
from opus.pipeline.worktree import Worktree
from opus.seams import PullRequest


def deliver_job(
    job: Job, ctx: PipelineContext, wt: Worktree, runs: Sequence[StageRun], iteration: int
) -> PullRequest:
    """Deliver the job's branch and return its PR (commenting on a later round)."""
    forge = ctx.forge_for(job)
    earlier = [run for run in runs if run.stage is Stage.DELIVER]
    report = delivery_report(job, runs, iteration)
    pr = deliver(job, wt.path, forge, ctx.settings, report)
    if earlier:
        since = earlier[-1].commit
        started_by = open_round(job.spec, earlier[-1].iteration)
        forge.comment(
            pr,
            render_round_comment(
                iteration,
                summary=_latest(runs, Stage.CODE).get("summary", ""),
                commits=_subjects(wt, since),
                test_summary=report.test_summary,
                reason=reason_line(started_by) if started_by is not None else "",
            ),
        )
    return pr


def delivery_report(job: Job, runs: Sequence[StageRun], iteration: int) -> DeliveryReport:
    plan = _latest(runs, Stage.PLAN)
    test = _latest(runs, Stage.TEST)
    review = _latest(runs, Stage.REVIEW)
    steps = tuple(str(step.get("title", "")) for step in plan.get("steps", []))
    baseline = job.spec.get("baseline")
    return DeliveryReport(
        fr_id=job.fr_id,
        title=job.title,
        fr_summary=str(job.spec.get("body", "")),
        fr_link=str(job.fr_path),
        plan_summary=str(plan.get("summary", "")),
        plan_steps=steps,
        test_summary=test_line(test),
        test_tail=str(test.get("output_tail", "")),
        review_verdict=str(review.get("verdict", "")),
        review_summary=str(review.get("summary", "")),
        iterations=iteration,
        cost_usd=job.cost_usd,
        baseline=str(baseline.get("summary", "")) if isinstance(baseline, dict) else "",
        notices=(CONFIG_CHANGED,) if test.get("config_changed") else (),
        conversation=render_conversation(conversation_of(job)),
        assumptions=tuple(str(line) for line in plan.get("assumptions") or ()),
    )


def _latest(runs: Sequence[StageRun], stage: Stage) -> dict[str, Any]:
    found = [run.output for run in runs if run.ok and run.stage is stage]
    return found[-1] if found else {}


def test_line(test: dict[str, Any]) -> str:
    """One line: the command, passed/failed, exit code, duration."""
    if not test:
        return ""
    verdict = "passed" if test.get("passed") else "failed"
    return (
        f"`{test.get('command')}` {verdict} (exit {test.get('exit_code')}, "
        f"{float(test.get('duration_s', 0)):.1f}s)"
    )


def _subjects(wt: Worktree, since: str | None) -> list[str]:
    if not since:
        return []
    out = git("log", "--format=%s", f"{since}..HEAD", cwd=wt.path, check=False)
    return [line for line in out.splitlines() if line]
