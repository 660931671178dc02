"""Every `stop_reason` and the empty reply, handled as Anthropic documents, on the real SDK."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opus.domain import Role
from opus.engines.base import AgentFailed
from opus.seams import AgentTask
from tests.engines.conftest import make_engine
from tests.standins.messages_api import (
    MessagesAPI,
    context_window_exceeded,
    cut_tool_call,
    empty_reply,
    paused,
    refusal,
    reply,
    text,
    tool_use,
)

TaskFactory = Callable[..., AgentTask]
EDITOR = "str_replace_based_edit_tool"
PLAN = {"summary": "Add sub().", "steps": [{"title": "Add sub", "postcondition": "sub(3, 1) == 2"}]}


def roles_and_sizes(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(m["role"], len(m["content"])) for m in body["messages"]]


def test_empty_end_turn_after_tool_results_is_not_sent_back(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(
        reply(tool_use("bash", {"command": "ls"})),
        empty_reply(),
        reply(tool_use("submit_plan", PLAN)),
    )
    result = make_engine(api).run(make_task(Role.PLANNER))
    assert result.stop_reason == "submitted"
    third = api.bodies[2]["messages"]
    # No assistant message with empty content: the nudge joins the tool results' turn.
    assert roles_and_sizes(api.bodies[2]) == [("user", 1), ("assistant", 1), ("user", 2)]
    assert [b["type"] for b in third[-1]["content"]] == ["tool_result", "text"]
    assert "call submit_plan" in third[-1]["content"][1]["text"].lower()


def test_empty_end_turn_of_the_coder_is_answered_with_a_continue_prompt(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(empty_reply(), reply(text("Added sub().")))
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.output == {"summary": "Added sub()."}
    assert roles_and_sizes(api.bodies[1]) == [("user", 2)]
    assert "continue" in api.bodies[1]["messages"][0]["content"][1]["text"].lower()


def test_empty_replies_only_end_the_coder_without_a_summary(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(empty_reply(), empty_reply(), empty_reply())
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.stop_reason == "end_turn"
    assert result.output == {"summary": "(no summary given)"}
    assert len(api.requests) == 3


def test_whitespace_text_before_a_tool_call_is_dropped(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(reply(text("\n\n"), tool_use("bash", {"command": "ls"})), reply(text("done")))
    make_engine(api).run(make_task(Role.CODER))
    assert [b["type"] for b in api.bodies[1]["messages"][1]["content"]] == ["tool_use"]


@pytest.mark.parametrize("role", [Role.CODER, Role.PLANNER])
def test_refusal_fails_the_stage(api: MessagesAPI, make_task: TaskFactory, role: Role) -> None:
    api.add(reply(tool_use("bash", {"command": "ls"})), refusal("I can't help with that."))
    with pytest.raises(AgentFailed, match="declined to continue") as caught:
        make_engine(api).run(make_task(role))
    assert "I can't help with that." in str(caught.value)
    assert caught.value.partial.turns == 2 and caught.value.partial.cost_usd > 0


def test_context_window_exceeded_fails_the_stage(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(reply(tool_use("bash", {"command": "ls"})), context_window_exceeded())
    with pytest.raises(AgentFailed, match="context window of claude-sonnet-4-6 after 2 turns"):
        make_engine(api).run(make_task(Role.CODER))


def test_tool_call_cut_by_max_tokens_is_asked_again_not_executed(
    api: MessagesAPI, make_task: TaskFactory, repo: Path
) -> None:
    whole = "line\n" * 50
    api.add(
        cut_tool_call(EDITOR, {"command": "create", "path": "notes.txt", "file_text": "li"}),
        reply(tool_use(EDITOR, {"command": "create", "path": "notes.txt", "file_text": whole})),
        reply(text("Wrote notes.txt.")),
    )
    activity: list[str] = []
    result = make_engine(api, max_tokens=4096).run(
        make_task(Role.CODER, on_activity=activity.append)
    )
    assert result.output == {"summary": "Wrote notes.txt."}
    assert (repo / "notes.txt").read_text() == whole
    first, second = api.bodies[0], api.bodies[1]
    assert (first["max_tokens"], second["max_tokens"]) == (4096, 8192)
    assert second["messages"] == first["messages"], "the cut reply is not sent back"
    assert any("cut off by max_tokens" in line for line in activity)
    assert result.usage.output_tokens >= 4096, "the cut reply is still paid for"


def test_tool_call_cut_at_the_models_largest_output_fails(
    api: MessagesAPI, make_task: TaskFactory, repo: Path
) -> None:
    api.add(cut_tool_call(EDITOR, {"command": "create", "path": "big.txt", "file_text": "x"}))
    with pytest.raises(AgentFailed, match="did not fit in 64000 output tokens"):
        make_engine(api, max_tokens=64_000).run(make_task(Role.CODER))
    assert not (repo / "big.txt").exists()


def test_text_cut_by_max_tokens_is_continued(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(reply(text("Added sub() and"), stop_reason="max_tokens"), reply(text("a test.")))
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.output == {"summary": "a test."}
    assert roles_and_sizes(api.bodies[1]) == [("user", 1), ("assistant", 1), ("user", 1)]


def test_pause_turn_is_continued_by_resending_the_turn(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(
        paused(text("Working on it.")),
        paused(text("Still working.\n")),
        reply(text("Added sub().")),
    )
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.output == {"summary": "Added sub()."}
    second, third = api.bodies[1]["messages"], api.bodies[2]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant"], "no new user message"
    assert second[-1]["content"] == [{"type": "text", "text": "Working on it."}]
    assert [b["text"] for b in third[-1]["content"]] == ["Working on it.", "Still working."]
    assert second[0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
