"""The checks of an open PR's head commit, and what opus does about them (`pr.ci`).

Only the required checks count (`opus.delivery.required_checks`: the base branch's
protection or rulesets, else every check, less `pr.optional_checks`); a failing check
that is not required is named in the job's log and the round's comment, never acted on.

- green, or no checks at all → nothing to do here (the PR may be ready to merge);
- pending → wait, with the PR polling's backoff; pending longer than `pr.ci_timeout_s`
  (counted from the first pass that saw this head pending) → "needs you", once;
- failing, `pr.ci = "react"` → a new round whose coder gets each failing check's name,
  conclusion, title, summary, text, annotations and log tail — once per head commit, at
  most `pr.ci_rounds` times and within the job's round cap; then "CI still failing on
  PR N — needs you", once. `pr.ci = "wait"` escalates at once; `"ignore"` reads nothing.

The cheap listing (one or two requests) is read every pass; annotations and logs only
when a round is about to start.
"""

from __future__ import annotations

import logging
from datetime import datetime

from opus.daemon.pr_reactions import clear, escalate, note, rounds_left, start_round
from opus.delivery.ci_report import ci_report_text
from opus.delivery.reactions import escalation, find
from opus.delivery.required_checks import Scoped, not_required_line, scope
from opus.domain import Job
from opus.pipeline.context import PipelineContext
from opus.seams import CIReport, Forge, PRFeedback, PullRequest, RequiredChecks

log = logging.getLogger(__name__)

PENDING = "ci_pending"
"""Key in a job's spec: {"sha", "since"} — when a pass first saw that head's checks pending."""
OPTIONAL = "ci_not_required"
"""Key in a job's spec: {"sha", "line"} — the failing checks left alone last named."""


def react_to_ci(
    ctx: PipelineContext, job: Job, forge: Forge, pr: PullRequest, feedback: PRFeedback
) -> str | None:
    """The CI reactor of `opus.daemon.pr_gate` (None: the checks are green or absent)."""
    sha = feedback.head
    if ctx.settings.pr.ci == "ignore" or not sha:
        return None
    required = forge.required_checks(pr.base or job.base or "")
    scoped = _scoped(ctx, forge.checks(sha), required)
    _name_optional(ctx, job, scoped)
    report = scoped.report
    if report.state in ("success", "none"):
        clear(ctx, job, kind="ci", sha=sha, why="CI is green")
        return None
    if report.state == "pending":
        return _pending(ctx, job, pr, report)
    return _failing(ctx, job, forge, pr, scoped, required=required)


def _scoped(ctx: PipelineContext, report: CIReport, required: RequiredChecks | None) -> Scoped:
    return scope(report, required, ctx.settings.pr.optional_checks)


def _name_optional(ctx: PipelineContext, job: Job, scoped: Scoped) -> None:
    """Failing checks that are not required: named once per head in the job's log."""
    line = not_required_line(scoped)
    seen = job.spec.get(OPTIONAL)
    if not line or (isinstance(seen, dict) and seen == {"sha": scoped.report.sha, "line": line}):
        return
    spec = {**job.spec, OPTIONAL: {"sha": scoped.report.sha, "line": line}}
    ctx.store.update(job.id, spec=spec)
    note(ctx, job, "ci_not_required",
         f"{line} on {scoped.report.sha[:10]} ({scoped.source} are acted on)")


def _pending(ctx: PipelineContext, job: Job, pr: PullRequest, report: CIReport) -> str:
    now = ctx.clock.now()
    seen = job.spec.get(PENDING)
    if not isinstance(seen, dict) or seen.get("sha") != report.sha:
        ctx.store.update(job.id, spec={**job.spec, PENDING: {"sha": report.sha,
                                                             "since": now.isoformat()}})
        return "wait"
    waited = (now - datetime.fromisoformat(str(seen["since"]))).total_seconds()
    if waited < ctx.settings.pr.ci_timeout_s:
        return "wait"
    names = ", ".join(c.name for c in report.checks if c.state == "pending") or "the checks"
    acted = escalate(
        ctx, job, pr, kind="ci", sha=report.sha, trigger=f"{names} pending",
        what=f"CI has not finished after {waited / 60:.0f} min",
        todo="Check the CI runners (or raise `pr.ci_timeout_s`).",
    )  # fmt: skip
    return "escalated" if acted else "wait"


def _failing(
    ctx: PipelineContext,
    job: Job,
    forge: Forge,
    pr: PullRequest,
    scoped: Scoped,
    *,
    required: RequiredChecks | None,
) -> str:
    report = scoped.report
    trigger = _trigger(scoped)
    mode = ctx.settings.pr.ci
    left = rounds_left(ctx, job, "ci", ctx.settings.pr.ci_rounds) if mode == "react" else 0
    repeated = find(job.spec, "ci", report.sha, "round") is not None
    if left > 0 and not repeated:
        details = _scoped(ctx, forge.checks(report.sha, details=True), required)
        if not details.report.failing:
            return "wait"  # re-run meanwhile: the next pass sees how it ends
        start_round(ctx, job, pr, kind="ci", sha=report.sha, trigger=_trigger(details),
                    report=ci_report_text(details.report))  # fmt: skip
        return "new_round"
    if escalation(job.spec, "ci") is not None:
        return "wait"
    todo = _todo(mode, repeated=repeated)
    acted = escalate(ctx, job, pr, kind="ci", sha=report.sha, trigger=trigger,
                     what="CI still failing", todo=todo)  # fmt: skip
    return "escalated" if acted else "wait"


def _todo(mode: str, *, repeated: bool) -> str:
    if mode == "wait":
        return "`pr.ci = \"wait\"`: opus only reports failing CI; fix it on the branch."
    if repeated:
        return "A round on this commit did not change it; fix the branch by hand."
    return "opus used its CI rounds (`pr.ci_rounds`); fix the branch by hand."


def _trigger(scoped: Scoped) -> str:
    """The failing required checks, then the failing ones left alone, in one line."""
    extra = not_required_line(scoped)
    return failing_names(scoped.report) + (f"; {extra}" if extra else "")


def failing_names(report: CIReport) -> str:
    """`test (failure), lint (timed_out)`: the failing checks in one line."""
    return ", ".join(f"{c.name} ({c.conclusion})" for c in report.failing) or "CI failed"
