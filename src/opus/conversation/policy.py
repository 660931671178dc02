"""When a job asks before planning, and whose plans a person approves (pure).

The FR's own keys (`open_questions:`, `approve_plan:`, copied into the job's spec) win
over `pipeline.open_questions` and `pipeline.approve_plan`.
"""

from __future__ import annotations

from collections.abc import Sequence

from opus.config import PipelineConfig
from opus.conversation.questions import Question, find_open_questions
from opus.conversation.waiting import PLAN_REVIEW, conversation_of
from opus.domain import Job, Stage, StageRun


def open_questions_mode(job: Job, pipeline: PipelineConfig) -> str:
    """ask, recommend or ignore."""
    own = job.spec.get("open_questions")
    return str(own) if own else pipeline.open_questions


def fr_questions(job: Job, pipeline: PipelineConfig) -> list[Question]:
    """The undecided questions written in the FR's body."""
    return find_open_questions(
        str(job.spec.get("body", "")),
        question_headings=pipeline.question_headings,
        decision_headings=pipeline.decision_headings,
    )


def questions_before_plan(
    job: Job, pipeline: PipelineConfig, runs: Sequence[StageRun]
) -> list[Question]:
    """The FR's undecided questions to ask now: mode `ask`, no plan yet, not yet answered."""
    if open_questions_mode(job, pipeline) != "ask" or any(run.ok for run in runs):
        return []
    if any(done.asked_by == "fr" for done in conversation_of(job)):
        return []
    return fr_questions(job, pipeline)


def assumptions(job: Job, pipeline: PipelineConfig) -> list[Question]:
    """Mode `recommend`: the questions the planner takes as their recommendation."""
    if open_questions_mode(job, pipeline) != "recommend":
        return []
    return fr_questions(job, pipeline)


def approval_required(job: Job, pipeline: PipelineConfig) -> bool:
    own = job.spec.get("approve_plan")
    if isinstance(own, bool):
        return own
    rule = pipeline.approve_plan
    if isinstance(rule, list):
        return job.priority.value in rule
    return rule == "always"


def latest_plan(runs: Sequence[StageRun]) -> StageRun | None:
    plans = [run for run in runs if run.ok and run.stage is Stage.PLAN]
    return plans[-1] if plans else None


def plan_decision(job: Job, plan: StageRun) -> tuple[str, str] | None:
    """(decision, comments) a person gave on this plan revision, if any."""
    review = job.spec.get(PLAN_REVIEW)
    if not isinstance(review, dict) or review.get("revision") != plan.iteration:
        return None
    return str(review.get("decision", "")), str(review.get("comments", ""))
