"""`ask_human` through the `anthropic` engine and the real SDK, against the stand-in."""

from __future__ import annotations

from collections.abc import Callable

from opus.domain import Role
from opus.seams import AgentTask
from tests.engines.conftest import make_engine
from tests.standins.messages_api import (
    MessagesAPI,
    last_tool_results,
    reply,
    text,
    tool_result_text,
    tool_use,
)

TaskFactory = Callable[..., AgentTask]
QUESTION = {"question": "Redis or memory?", "options": ["Redis", "memory"],
            "recommendation": "Redis"}


def _tool_names(api: MessagesAPI) -> list[str]:
    """The tools the latest request offered."""
    return [tool["name"] for tool in api.bodies[-1]["tools"]]


def test_the_planner_asks_and_the_stage_ends_with_the_questions(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(
        reply(text("I need a decision."), tool_use("ask_human", {"questions": [{}]})),
        lambda body: (
            "question" in tool_result_text(last_tool_results(body)[0])
            and reply(tool_use("ask_human", {"questions": [QUESTION]}))
        ),
    )
    result = make_engine(api).run(make_task(Role.PLANNER, can_ask=True))
    assert result.stop_reason == "asked"
    assert result.output == {"questions": [{**QUESTION}]}
    assert result.turns == 2 and result.cost_usd > 0
    assert "ask_human" in _tool_names(api)
    assert len(api.bodies) == 2, "nothing more is asked of the model once it asked a person"


def test_the_coder_is_offered_ask_human_only_when_allowed(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(reply(text("Done.")))
    make_engine(api).run(make_task(Role.CODER))
    assert "ask_human" not in _tool_names(api)

    api.add(reply(tool_use("ask_human", {"questions": [QUESTION]})))
    result = make_engine(api).run(make_task(Role.CODER, can_ask=True))
    assert "ask_human" in _tool_names(api)
    assert result.stop_reason == "asked"


def test_a_role_without_the_tool_gets_an_error_result(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(
        reply(tool_use("ask_human", {"questions": [QUESTION]})),
        lambda body: (
            "no tool named 'ask_human'" in tool_result_text(last_tool_results(body)[0])
            and reply(tool_use("submit_review", {"verdict": "approve", "summary": "ok"}))
        ),
    )
    result = make_engine(api).run(make_task(Role.REVIEWER))
    assert result.stop_reason == "submitted"
