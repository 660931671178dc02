"""The Messages stand-in rejects what the real API rejects (raw SDK calls, no opus code)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.standins.messages_api import (
    API_KEY,
    MessagesAPI,
    cut_tool_call,
    overloaded,
    rate_limited,
    reply,
    text,
    tool_use,
)

BASH = {"type": "bash_20250124", "name": "bash"}
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def open_api() -> Iterator[MessagesAPI]:
    with MessagesAPI(require_tools=False) as server:
        yield server


def call(api: MessagesAPI, *, retries: int = 0, **fields: Any) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=retries)
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "timeout": 30,
        **fields,
    }
    return client.messages.create(**request)


def rejected(api: MessagesAPI, **fields: Any) -> str:
    with pytest.raises(anthropic.BadRequestError) as caught:
        call(api, **fields)
    body: Any = caught.value.body
    assert body["error"]["type"] == "invalid_request_error"
    return str(body["error"]["message"])


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def result(tool_use_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": "ok"}


USE = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}


def test_empty_content_is_rejected_unless_final_assistant(open_api: MessagesAPI) -> None:
    message = rejected(open_api, messages=[user(text("hi")), assistant(), user(text("go on"))])
    assert message == (
        "messages.1: all messages must have non-empty content except for the optional final "
        "assistant message"
    )
    assert "non-whitespace" in rejected(open_api, messages=[user(text(" \n"))])
    open_api.add(reply(text("Hello.")))
    assert call(open_api, messages=[user(text("hi")), assistant()]).content[0].type == "text"


def test_tool_results_must_come_first_and_match_the_previous_tool_uses(
    open_api: MessagesAPI,
) -> None:
    text_first = [user(text("ls")), assistant(USE), user(text("here:"), result("toolu_1"))]
    assert rejected(open_api, tools=[BASH], messages=text_first) == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )
    unknown = [user(text("ls")), assistant(USE), user(result("toolu_1"), result("toolu_9"))]
    assert rejected(open_api, tools=[BASH], messages=unknown).startswith(
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9."
    )


def test_at_most_four_cache_breakpoints(open_api: MessagesAPI) -> None:
    blocks = [{"type": "text", "text": f"part {n}", "cache_control": EPHEMERAL} for n in range(5)]
    message = rejected(open_api, messages=[user(*blocks)])
    assert message == "A maximum of 4 blocks with cache_control may be provided. Found 5."


@pytest.mark.parametrize(
    ("model", "tool", "expected"),
    [
        (
            "claude-3-7-sonnet-20250219",
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            "'claude-3-7-sonnet-20250219' does not support tool types: text_editor_20250728. "
            "Did you mean one of bash_20250124, computer_20250124, text_editor_20250124, "
            "web_search_20250305?",
        ),
        (
            "claude-sonnet-4-5",
            {"type": "text_editor_20250124", "name": "str_replace_editor"},
            "'claude-sonnet-4-5' does not support tool types: text_editor_20250124.",
        ),
        (
            "claude-3-5-haiku-20241022",
            BASH,
            "'claude-3-5-haiku-20241022' does not support tool types: bash_20250124.",
        ),
        (
            "claude-sonnet-4-6",
            {"type": "text_editor_20250728", "name": "str_replace_editor"},
            "tools.0.text_editor_20250728.name: Input should be 'str_replace_based_edit_tool'",
        ),
    ],
)
def test_tool_types_the_model_does_not_support(
    open_api: MessagesAPI, model: str, tool: dict[str, Any], expected: str
) -> None:
    message = rejected(open_api, model=model, tools=[tool], messages=[user(text("hi"))])
    assert message.startswith(expected)


def test_max_tokens_above_the_models_limit_and_unknown_models(open_api: MessagesAPI) -> None:
    message = rejected(open_api, max_tokens=100_000, messages=[user(text("hi"))])
    assert message == (
        "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens "
        "for claude-sonnet-4-6"
    )
    with pytest.raises(anthropic.NotFoundError):
        call(open_api, model="claude-nonexistent-1", messages=[user(text("hi"))])


def test_usage_is_realistic(open_api: MessagesAPI) -> None:
    short = [user({"type": "text", "text": "hi", "cache_control": EPHEMERAL})]
    long_text = "A long and stable instruction. " * 400
    system = [{"type": "text", "text": long_text, "cache_control": EPHEMERAL}]
    open_api.add(
        reply(text("Hello.")),
        reply(text("Hello.")),
        reply(text("Hello again.")),
        cut_tool_call("bash", {"command": "l"}),
    )
    tiny = call(open_api, messages=short).usage
    assert (tiny.cache_creation_input_tokens, tiny.cache_read_input_tokens) == (0, 0)
    first = call(open_api, system=system, messages=short).usage
    second = call(open_api, system=system, messages=short).usage
    assert first.cache_creation_input_tokens > 2048 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    cut = call(open_api, tools=[BASH], max_tokens=300, messages=[user(text("ls"))])
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 300


def test_impossible_scripted_usage_fails_the_test() -> None:
    api = MessagesAPI(
        [reply(text("x"), usage={"cache_read_input_tokens": 500})], require_tools=False
    )
    api.start()
    try:
        with pytest.raises(anthropic.InternalServerError, match="caches nothing below 2048"):
            call(api, messages=[user(text("hi"))])
        assert api.failures and "cache tokens" in str(api.failures[0])
    finally:
        api.failures.clear()
        api.close()


def test_429_and_529_carry_retry_after_and_the_sdk_waits_for_it(open_api: MessagesAPI) -> None:
    open_api.add(rate_limited(retry_after_s=1), overloaded(retry_after_s=1), reply(text("ok")))
    started = time.monotonic()
    assert call(open_api, retries=2, messages=[user(text("hi"))]).content[0].type == "text"
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(open_api.requests)]
    print(f"retry gaps: {[f'{gap:.2f}s' for gap in gaps]}, total {time.monotonic() - started:.2f}s")
    assert gaps[0] >= 0.9 and gaps[1] >= 0.9, "the SDK waited for retry-after"
    statuses = [r["headers"].get("x-stainless-retry-count") for r in open_api.requests]
    assert statuses == ["0", "1", "2"]


def test_tool_use_answered_in_the_next_turn_passes(open_api: MessagesAPI) -> None:
    open_api.add(reply(tool_use("bash", {"command": "ls"})))
    ok = [user(text("ls")), assistant(USE), user(result("toolu_1"), text("and then?"))]
    assert call(open_api, tools=[BASH], messages=ok).stop_reason == "tool_use"
