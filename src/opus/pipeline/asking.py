"""Where the pipeline stops for a person: open questions before `plan`, an agent's
`ask_human`, and plan approval between `plan` and `code` (designs/conversation.md).

The executor calls these at its checkpoints; each either lets the job go on or names
what it waits for (`WaitForInput`), and the executor moves it to `waiting_input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opus.conversation import policy
from opus.conversation.questions import Question
from opus.conversation.waiting import Waiting, next_round
from opus.domain import Job, Stage, StageRun
from opus.errors import OpusError
from opus.pipeline.context import PipelineContext
from opus.pipeline.progress import Progress, Step


class WaitForInput(OpusError):
    """The job cannot go on without a person; `waiting` says what it asks."""

    def __init__(self, waiting: Waiting) -> None:
        super().__init__(f"waiting for a person ({waiting.kind})")
        self.waiting = waiting


def questions_before_plan(job: Job, ctx: PipelineContext) -> Waiting | None:
    """`open_questions = ask`: the FR's undecided questions, before anything is spent."""
    runs = ctx.store.stage_runs(job.id)
    asked = policy.questions_before_plan(job, ctx.settings.pipeline, runs)
    if not asked:
        return None
    return _waiting(job, ctx, kind="questions", asked_by="fr", stage=Stage.PLAN, iteration=0,
                    questions=tuple(asked))


def agent_questions(
    job: Job, ctx: PipelineContext, step: Step, asked: Sequence[dict[str, Any]]
) -> Waiting:
    """What the planner (or coder) asked through `ask_human`."""
    role = "planner" if step.stage is Stage.PLAN else "coder"
    questions = tuple(Question.from_dict(item) for item in asked)
    return _waiting(job, ctx, kind="questions", asked_by=role, stage=step.stage,
                    iteration=step.iteration, questions=questions)


def after_plan(
    job: Job, ctx: PipelineContext, runs: Sequence[StageRun], progress: Progress
) -> Progress:
    """Between `plan` and the first `code`: wait for approval, or plan again on `changes`.

    Re-plans are plan revisions (plan stage runs 0, 1, 2, …) and never count against
    the code round cap.
    """
    if not (isinstance(progress, Step) and progress.stage is Stage.CODE
            and progress.iteration == 1):
        return progress
    if any(run.stage is Stage.CODE for run in runs):
        return progress  # coding already began: the plan was approved (or needed none)
    plan = policy.latest_plan(runs)
    if plan is None or not policy.approval_required(job, ctx.settings.pipeline):
        return progress
    decided = policy.plan_decision(job, plan)
    if decided is None:
        raise WaitForInput(
            _waiting(job, ctx, kind="plan", asked_by="opus", stage=Stage.PLAN,
                     iteration=plan.iteration, round_=plan.iteration + 1)
        )
    decision, comments = decided
    if decision == "changes":
        return Step(Stage.PLAN, plan.iteration + 1, feedback=comments)
    return progress


def _waiting(
    job: Job,
    ctx: PipelineContext,
    *,
    kind: str,
    asked_by: str,
    stage: Stage,
    iteration: int,
    questions: tuple[Question, ...] = (),
    round_: int | None = None,
) -> Waiting:
    return Waiting(
        kind="plan" if kind == "plan" else "questions",
        asked_by=asked_by,
        stage=stage.value,
        iteration=iteration,
        round=round_ if round_ is not None else next_round(job),
        since=ctx.clock.now().isoformat(timespec="seconds"),
        questions=questions,
    )
