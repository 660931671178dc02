"""The five stages. Each takes the job at a step and returns what its checkpoint stores.

Agents are run through the `Engine` seam; the tester through the `Sandbox`; delivery
through `opus.delivery`. A stage asked to stop before it completes raises `Interrupted`
and is not kept as a checkpoint: the job resumes at that stage from the previous one.
What its agent had spent rides on the error (`partial`) so the budgets still count it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opus.domain import Job, Role, Stage, StageRun, Usage
from opus.engines.base import AgentFailed
from opus.errors import BudgetExceeded, OpusError, StageFailed
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.progress import Step
from opus.pipeline.worktree import Worktree
from opus.prompts import load_prompt, messages
from opus.seams import AgentResult, AgentTask


class Interrupted(OpusError):
    """The stage was stopped before it completed; it will run again from its checkpoint."""

    partial: AgentResult | None = None
    """What the stage's agent spent before it was stopped (its wall time ran out, or a stop
    was asked for), when it spent anything: the executor records it, as it does an
    `EngineError`'s, so the job's and the day's budgets count it once."""


@dataclass(frozen=True)
class StageOutcome:
    output: dict[str, Any]
    note: str
    usage: Usage = Usage()
    cost_usd: float = 0.0
    prompt_sha256: str | None = None
    stop: OpusError | None = None
    """Set when the stage's work is kept but the job cannot go on (budget)."""
    asked: list[dict[str, Any]] | None = None
    """The agent called `ask_human` with these questions: the job waits for a person."""


@dataclass(frozen=True)
class _Call:
    job: Job
    ctx: PipelineContext
    control: JobControl
    wt: Worktree
    step: Step
    budget_usd: float
    on_spend: Callable[[Usage, float], None]

    def runs(self) -> list[StageRun]:
        return [run for run in self.ctx.store.stage_runs(self.job.id) if run.ok]

    def latest(self, stage: Stage) -> dict[str, Any]:
        found = [run.output for run in self.runs() if run.stage is stage]
        return found[-1] if found else {}


def run_stage(
    job: Job,
    ctx: PipelineContext,
    control: JobControl,
    wt: Worktree,
    step: Step,
    *,
    budget_usd: float,
    on_spend: Callable[[Usage, float], None] = lambda _usage, _cost_usd: None,
) -> StageOutcome:
    """Run `step.stage` and return its checkpoint data; an agent's engine reports what
    the stage has spent after each billed call to `on_spend` (`metering.StageMeter`)."""
    call = _Call(job, ctx, control, wt, step, budget_usd, on_spend)
    return _RUNNERS[step.stage](call)


# --------------------------------------------------------------------------- agents


def _agent(call: _Call, role: Role, message: str) -> tuple[AgentResult, str]:
    pipeline = call.ctx.settings.pipeline
    prompt = load_prompt(role, call.ctx.vault_root)
    task = AgentTask(
        role=role,
        system_prompt=prompt.text,
        user_message=message,
        worktree=call.wt.path,
        sandbox=call.ctx.sandbox,
        model=call.ctx.settings.agents.model_for(role.value),
        max_turns=pipeline.max_turns,
        max_tokens=pipeline.max_stage_tokens,
        timeout_s=pipeline.stage_timeout_s,
        budget_usd=call.budget_usd,
        on_activity=call.control.touch,
        on_spend=call.on_spend,
        on_answer=call.control.answered,
        should_stop=call.control.must_stop_now,
        can_ask=role is Role.PLANNER
        or (role is Role.CODER and call.ctx.settings.agents.coder_can_ask),
    )
    result = call.ctx.engine.run(task)
    if call.control.must_stop_now() and result.stop_reason not in (
        "submitted", "end_turn", "asked"
    ):
        raise interrupted(f"{role.value} stopped: {call.control.stop_reason}", result)
    if result.stop_reason == "timeout":
        raise interrupted(f"stuck: {role.value} ran past pipeline.stage_timeout_s", result)
    return result, prompt.sha256


def interrupted(message: str, result: AgentResult) -> Interrupted:
    """`Interrupted` carrying what the agent's billed calls spent, if anything."""
    error = Interrupted(message)
    if result.cost_usd > 0 or result.usage.total > 0:
        error.partial = dataclasses.replace(result, report=message)
    return error


def _outcome(result: AgentResult, sha: str, output: dict[str, Any], note: str) -> StageOutcome:
    stop = BudgetExceeded(_budget_message(result)) if result.stop_reason == "budget" else None
    return StageOutcome(output, note, result.usage, result.cost_usd, sha, stop)


def _asked(result: AgentResult, sha: str) -> StageOutcome | None:
    """The stage ended on `ask_human`: its spend and questions, for the executor."""
    if result.stop_reason != "asked":
        return None
    questions = list(result.output.get("questions") or [])
    return StageOutcome({"asked": questions}, f"asked {len(questions)} question(s)",
                        result.usage, result.cost_usd, sha, asked=questions)


def _budget_message(result: AgentResult) -> str:
    return (
        f"the job's budget ran out during this stage ({result.report}); raise `budget:` "
        "in the note or `budget.job_usd`, then `opus retry`"
    )


def _require_submitted(result: AgentResult, role: Role, tool: str) -> None:
    """A planner or reviewer without a submission fails the stage, keeping what it spent."""
    if result.stop_reason == "submitted":
        return
    if result.stop_reason == "budget":
        raise AgentFailed(_budget_message(result), result)
    raise AgentFailed(
        f"the {role.value} ended ({result.stop_reason}) without calling {tool}: "
        f"{result.report or 'no report'}",
        result,
    )


def _plan(call: _Call) -> StageOutcome:
    from opus.pipeline.asking_context import planner_context

    context, assumed = planner_context(call.job, call.ctx.settings.pipeline, call.step,
                                       call.latest(Stage.PLAN))
    message = messages.planner_message(call.job.fr_id, call.job.title, _body(call.job),
                                       context=context)
    result, sha = _agent(call, Role.PLANNER, message)
    asked = _asked(result, sha)
    if asked is not None:
        return asked
    _require_submitted(result, Role.PLANNER, "submit_plan")
    steps = result.output.get("steps", [])
    output = {**result.output, "assumptions": assumed} if assumed else result.output
    return _outcome(result, sha, output, f"plan with {len(steps)} step(s)")


def _code(call: _Call) -> StageOutcome:
    from opus.pipeline.asking_context import answers_context

    message = messages.coder_message(
        call.job.fr_id,
        call.job.title,
        _body(call.job),
        plan=call.latest(Stage.PLAN),
        iteration=call.step.iteration,
        feedback=call.step.feedback,
        context=answers_context(call.job),
    )
    result, sha = _agent(call, Role.CODER, message)
    asked = _asked(result, sha)
    if asked is not None:
        return asked
    summary = str(result.output.get("summary", "")).strip()
    output = {
        "summary": summary,
        "stop_reason": result.stop_reason,
        "report": result.report,
        "turns": result.turns,
    }
    note = result.report if result.stop_reason != "end_turn" else (summary[:300] or "done")
    return _outcome(result, sha, output, note)


def _review(call: _Call) -> StageOutcome:
    test = call.latest(Stage.TEST)
    message = messages.reviewer_message(
        call.job.fr_id,
        call.job.title,
        _body(call.job),
        plan=call.latest(Stage.PLAN),
        diff=call.wt.diff(_base(call)),
        test_summary=_test_summary(test),
    )
    if test.get("config_changed"):
        from opus.pipeline.preflight import CONFIG_CHANGED

        message += f"\n\nNote from opus: {CONFIG_CHANGED}\n"
    result, sha = _agent(call, Role.REVIEWER, message)
    _require_submitted(result, Role.REVIEWER, "submit_review")
    verdict = result.output.get("verdict")
    return _outcome(result, sha, result.output, f"verdict {verdict}")


# --------------------------------------------------------------------------- tests


def _test(call: _Call) -> StageOutcome:
    from opus.pipeline import preflight
    from opus.pipeline.tester import TestOutcome

    # The trusted gate: the command comes from the FR or the base commit, never from
    # the worktree the coder just wrote.
    command = preflight.test_command(call.job, preflight.trusted_view(call.job, call.wt))
    if not command:
        raise StageFailed(
            "no test command: add `test_command:` to the note, or `test_command` to the "
            "repo's .opus.toml"
        )
    setup = preflight.run_setup(call.job, call.ctx, call.control, call.wt)
    call.control.touch(f"running tests: {command}")
    if setup.ok:
        result = preflight.run_tests(call.job, call.ctx, call.wt, command)
    else:
        # The coder's change broke the setup (a bad dependency): its round to fix.
        result = TestOutcome(command, False, setup.exit_code, setup.duration_s,
                             setup.report(), hint=setup.hint)
    output = {
        "command": result.command,
        "passed": result.passed,
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 3),
        "timed_out": result.timed_out,
        "output_tail": _with_hint(result.hint, result.output_tail),
        "config_changed": preflight.config_changed(call.job, call.wt),
    }
    if result.hint:
        output["hint"] = result.hint
    return StageOutcome(output, _test_summary(output))


def _with_hint(hint: str, tail: str) -> str:
    return f"{hint}\n{tail}" if hint else tail


def _test_summary(output: dict[str, Any]) -> str:
    from opus.pipeline.delivering import test_line

    return test_line(output) or "no test run"


# --------------------------------------------------------------------------- delivery


def _deliver(call: _Call) -> StageOutcome:
    from opus.pipeline.delivering import deliver_job

    pr = deliver_job(call.job, call.ctx, call.wt, call.runs(), call.step.iteration)
    call.ctx.store.update(call.job.id, pr_url=pr.url)
    return StageOutcome({"pr_url": pr.url, "number": pr.number}, f"PR {pr.url}")


def _body(job: Job) -> str:
    return str(job.spec.get("body", ""))


def _base(call: _Call) -> str:
    """Where the branch's own changes start: after a merged moved base, that base."""
    if not call.job.base:
        return "HEAD"
    from opus.delivery.deliver import fork_point

    try:
        return fork_point(call.wt.path, call.job.base, remote=call.ctx.settings.git.remote)
    except OpusError:
        return call.job.base


_RUNNERS: dict[Stage, Callable[[_Call], StageOutcome]] = {
    Stage.PLAN: _plan,
    Stage.CODE: _code,
    Stage.TEST: _test,
    Stage.REVIEW: _review,
    Stage.DELIVER: _deliver,
}
