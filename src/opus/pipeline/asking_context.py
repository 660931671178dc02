"""What the agents are told of the conversation: a person's answers, the assumptions
taken in `recommend` mode, and the changes asked of a plan (pure text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opus.config import PipelineConfig
from opus.conversation import policy
from opus.conversation.waiting import conversation_of, render_conversation
from opus.domain import Job, Stage
from opus.pipeline.progress import Step
from opus.prompts.messages import format_plan


def answers_context(job: Job) -> str:
    """The questions asked so far and a person's answers, or ''."""
    rounds = conversation_of(job)
    if not rounds:
        return ""
    return (
        "## Answers from a person\n\nThese questions were asked and answered; treat the "
        "answers as decisions of the feature request.\n\n" + render_conversation(rounds) + "\n"
    )


def planner_context(
    job: Job, pipeline: PipelineConfig, step: Step, previous_plan: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The planner's extra context and the assumptions it plans with (`recommend`)."""
    parts = [answers_context(job)]
    assumed = [
        f"{q.question} → {q.recommendation or 'no recommendation: decide and say so'}"
        for q in policy.assumptions(job, pipeline)
    ]
    if assumed:
        parts.append(
            "## Assumptions\n\nThe feature request leaves these questions undecided. Plan "
            "with the recommendation given for each, and state each assumption in the plan "
            "summary:\n\n" + "\n".join(f"- {line}" for line in assumed) + "\n"
        )
    if step.stage is Stage.PLAN and step.iteration > 0:
        parts.append(
            "## Changes a person asked for\n\nYour previous plan was not approved. Their "
            "comments:\n\n" + step.feedback.strip() + "\n\nThe previous plan:\n\n"
            + format_plan(previous_plan) + "\n\nSubmit a revised plan that addresses "
            "every comment.\n"
        )
    return "\n".join(part for part in parts if part), assumed
