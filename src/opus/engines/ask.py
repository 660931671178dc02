"""The `ask_human` tool: an agent's questions for a person (SPEC §5).

Offered to the planner, and to the coder with `agents.coder_can_ask`. A valid call ends
the stage (stop reason `asked`): the job waits, spending nothing, until a person answers
in the question note or with `opus answer`; the stage then runs again with the answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ASK_HUMAN = "ask_human"
MAX_QUESTIONS = 10


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    question: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list)
    recommendation: str | None = None


class _Questions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    questions: list[_Question] = Field(min_length=1, max_length=MAX_QUESTIONS)


ASK_HUMAN_TOOL: dict[str, Any] = {
    "name": ASK_HUMAN,
    "description": (
        "Ask the person who wrote the feature request, when a decision is theirs to make "
        "and the request and the code do not settle it (a product choice, an ambiguous "
        "requirement, a trade-off they must own). Do not ask what you can find out by "
        "reading the code. Calling it ends your work for now: you will be started again "
        "with the answers. Give options and your recommendation where you have them."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_QUESTIONS,
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string"},
                        "options": {"type": "array", "items": {"type": "string"}},
                        "recommendation": {"type": "string"},
                    },
                    "required": ["question"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["questions"],
        "additionalProperties": False,
    },
}


class InvalidQuestions(ValueError):
    """An `ask_human` input that does not match its schema; the message says what to fix."""


def validate_questions(data: Any) -> list[dict[str, Any]]:
    """The questions as plain dicts ({question, options, recommendation})."""
    try:
        parsed = _Questions.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(input)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidQuestions(f"{ASK_HUMAN} input is invalid ({problems})") from exc
    return [question.model_dump() for question in parsed.questions]
