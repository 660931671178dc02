"""The final outputs of the planner and the reviewer: tool schemas and validation.

The same validation serves every engine: the `submit_plan`/`submit_review` tools of the
`anthropic` engine, the output file of the `command` engine and the fenced JSON block of
the `claude-code` engine.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opus.domain import Role

SUBMIT_PLAN = "submit_plan"
SUBMIT_REVIEW = "submit_review"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PlanStep(_Strict):
    title: str = Field(min_length=1, description="What this step does, in a few words.")
    postcondition: str = Field(
        min_length=1, description="What is true when the step is done, checkable by a command."
    )


class Plan(_Strict):
    summary: str = Field(min_length=1, description="The approach in two or three sentences.")
    steps: list[PlanStep] = Field(min_length=1, description="Ordered, small, verifiable steps.")


class Comment(_Strict):
    path: str | None = Field(None, description="File the comment is about, worktree-relative.")
    line: int | None = Field(None, ge=1, description="Line in that file, if any.")
    body: str = Field(min_length=1, description="What is wrong and what to do instead.")


class Review(_Strict):
    verdict: Literal["approve", "request_changes"]
    summary: str = Field(min_length=1, description="The overall judgement.")
    comments: list[Comment] = Field(default_factory=list)


SUBMIT_PLAN_TOOL: dict[str, Any] = {
    "name": SUBMIT_PLAN,
    "description": (
        "Submit the final implementation plan. Call exactly once, when you have read enough "
        "of the code. Each step needs a postcondition that a command or a reader can verify."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "The approach in 2-3 sentences."},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "postcondition": {"type": "string"},
                    },
                    "required": ["title", "postcondition"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["summary", "steps"],
        "additionalProperties": False,
    },
}

SUBMIT_REVIEW_TOOL: dict[str, Any] = {
    "name": SUBMIT_REVIEW,
    "description": (
        "Submit the review verdict. Call exactly once. `approve` only when the change does "
        "what the feature request asks and the tests pass; otherwise `request_changes` with "
        "concrete comments the coder can act on."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
            "summary": {"type": "string"},
            "comments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "line": {"type": "integer", "minimum": 1},
                        "body": {"type": "string"},
                    },
                    "required": ["body"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["verdict", "summary"],
        "additionalProperties": False,
    },
}

_MODELS: dict[Role, type[Plan] | type[Review]] = {Role.PLANNER: Plan, Role.REVIEWER: Review}
SUBMIT_TOOL_NAME: dict[Role, str] = {Role.PLANNER: SUBMIT_PLAN, Role.REVIEWER: SUBMIT_REVIEW}


class InvalidSubmission(ValueError):
    """A final output that does not match its schema; the message says what to fix."""


def validate_submission(role: Role, data: Any) -> dict[str, Any]:
    """The normalised output dict for `role`, or `InvalidSubmission` naming each problem."""
    model = _MODELS.get(role)
    if model is None:
        raise InvalidSubmission(f"the {role} role submits no structured output")
    try:
        return model.model_validate(data).model_dump()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(input)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidSubmission(f"{SUBMIT_TOOL_NAME[role]} input is invalid ({problems})") from exc


def parse_submission(role: Role, text: str) -> dict[str, Any]:
    """Parse JSON `text` and validate it for `role` (see `validate_submission`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(f"not valid JSON: {exc}") from exc
    return validate_submission(role, data)


_EXAMPLES: dict[Role, dict[str, Any]] = {
    Role.PLANNER: {
        "summary": "The approach in two or three sentences.",
        "steps": [{"title": "What the step does", "postcondition": "How to check it is done"}],
    },
    Role.REVIEWER: {
        "verdict": "approve or request_changes",
        "summary": "The overall judgement.",
        "comments": [{"path": "src/file.py", "line": 12, "body": "What to change and why"}],
    },
}


def describe_output(role: Role, where: str) -> str:
    """Instructions for engines without tools: put the result as JSON `where`.

    `where` completes "Write your final result as JSON ...", for example
    "to the file /tmp/out.json" or "in a fenced ```json block at the end of your reply".
    """
    name = SUBMIT_TOOL_NAME[role]
    example = json.dumps(_EXAMPLES[role], indent=2)
    return (
        f"The `{name}` tool is not available here. Where these instructions say to call "
        f"`{name}`, instead write your final result as JSON {where}, shaped like this "
        f"(every field required except a comment's path and line):\n\n```json\n{example}\n```\n"
    )
