"""Retries, API failures and the wall-time limit of the `anthropic` engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from opus.config import AgentsConfig
from opus.domain import Role
from opus.engines.anthropic_engine import AnthropicEngine
from opus.engines.pricing import cost_usd
from opus.errors import EngineError, ModelNotFound
from opus.seams import AgentTask
from opus.testing.clock import FakeClock
from tests.engines.conftest import SANDBOX_CFG, make_engine
from tests.standins.billing import billed_usage
from tests.standins.messages_api import (
    ApiError,
    MessagesAPI,
    overloaded,
    rate_limited,
    reply,
    server_error,
    text,
    tool_use,
)

TaskFactory = Callable[..., AgentTask]


@pytest.mark.parametrize("failure", [overloaded, rate_limited])
def test_transient_error_is_retried(
    api: MessagesAPI, make_task: TaskFactory, failure: Callable[[], Any]
) -> None:
    api.add(failure(), reply(text("done")))
    result = make_engine(api, max_retries=2).run(make_task(Role.CODER))
    assert result.stop_reason == "end_turn"
    assert len(api.requests) == 2
    assert api.requests[1]["headers"]["x-stainless-retry-count"] == "1"


def test_errors_beyond_retries_raise_engine_error(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(server_error(), server_error(), server_error(), reply(text("too late")))
    with pytest.raises(EngineError) as caught:
        make_engine(api, max_retries=2).run(make_task(Role.CODER))
    message = str(caught.value)
    assert "HTTP 500" in message and "2 retries" in message
    assert "status.anthropic.com" in message
    assert len(api.requests) == 3


def test_an_error_after_successful_calls_carries_what_they_spent(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(
        reply(tool_use("bash", {"command": "ls"}), usage={"output_tokens": 30}),
        reply(tool_use("bash", {"command": "cat README.md"}), usage={"output_tokens": 40}),
        server_error(), server_error(),
    )  # fmt: skip
    with pytest.raises(EngineError) as caught:
        make_engine(api, max_retries=1).run(make_task(Role.CODER))
    partial = caught.value.partial
    assert partial is not None, "the two billed calls must not be lost"
    assert partial.turns == 2
    assert partial.usage == billed_usage(api.replies)
    assert partial.usage.output_tokens == 70
    assert partial.cost_usd == pytest.approx(cost_usd("claude-sonnet-4-6", partial.usage))
    assert partial.cost_usd > 0
    assert "HTTP 500 after 1 retries" in partial.report
    assert len(api.requests) == 4


def test_an_error_on_the_first_call_carries_nothing(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(server_error())
    with pytest.raises(EngineError) as caught:
        make_engine(api).run(make_task(Role.CODER))
    assert caught.value.partial is None


def test_only_retried_answers_say_they_were_retried(make_task: TaskFactory) -> None:
    """The SDK retries 408, 409, 429 and 5xx, unless `x-should-retry` says otherwise."""
    cases = [
        (ApiError(400, "invalid_request_error", "messages: bad"), False),
        (ApiError(403, "permission_error", "not allowed"), False),
        (ApiError(503, "api_error", "down", {"x-should-retry": "false"}), False),
        (ApiError(400, "invalid_request_error", "bad", {"x-should-retry": "true"}), True),
        (ApiError(409, "api_error", "lock timeout"), True),
    ]
    for error, retried in cases:
        with MessagesAPI([error] * 3) as api:
            with pytest.raises(EngineError) as caught:
                make_engine(api, max_retries=2).run(make_task(Role.CODER))
            message = str(caught.value)
            assert len(api.requests) == (3 if retried else 1), message
        assert f"HTTP {error.status}" in message
        assert ("after 2 retries" in message) is retried, message


def test_bad_key_says_to_check_it(api: MessagesAPI, make_task: TaskFactory) -> None:
    client = anthropic.Anthropic(base_url=api.base_url, api_key="wrong", max_retries=0)
    engine = AnthropicEngine(AgentsConfig(max_retries=0), SANDBOX_CFG, client=client)
    with pytest.raises(EngineError, match="ANTHROPIC_API_KEY"):
        engine.run(make_task(Role.PLANNER))


def test_unreachable_api(make_task: TaskFactory) -> None:
    with MessagesAPI() as gone:
        url = gone.base_url
    client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
    engine = AnthropicEngine(AgentsConfig(max_retries=0), SANDBOX_CFG, client=client)
    with pytest.raises(EngineError, match="ANTHROPIC_BASE_URL"):
        engine.run(make_task(Role.CODER))


def test_wall_time_limit(api: MessagesAPI, make_task: TaskFactory) -> None:
    clock = FakeClock()

    def slow_reply(_request: dict[str, Any]) -> dict[str, Any]:
        clock.advance(40)  # each model call "takes" 40 s on the fake clock
        return reply(tool_use("bash", {"command": f"echo {clock.monotonic()}"}))

    api.add(*(slow_reply for _ in range(5)))
    engine = make_engine(api)
    engine.clock = clock
    result = engine.run(make_task(Role.CODER, timeout_s=100))
    assert result.stop_reason == "timeout"
    assert result.turns == 3
    assert "100s" in result.report
    assert result.output["summary"]


def test_client_from_environment(
    api: MessagesAPI, make_task: TaskFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    api.add(reply(text("done")))
    engine = AnthropicEngine(AgentsConfig(max_retries=0), SANDBOX_CFG)
    assert engine.run(make_task(Role.CODER)).output == {"summary": "done"}


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("settings", "key", "instead"),
    [
        # Reached its end of life: the API no longer serves it.
        ({"coder_model": "claude-sonnet-4-5-20250929"}, "agents.coder_model", "claude-sonnet-4-6"),
        # Never existed: a typo in the config.
        ({"model": "claude-sonet-4-6"}, "agents.model", "claude-sonnet-4-6"),
    ],
)
def test_a_model_the_api_does_not_know_fails_for_good_naming_its_key(
    api: MessagesAPI, make_task: TaskFactory, settings: dict[str, str], key: str, instead: str
) -> None:
    [model] = settings.values()
    api.retired_models.add("claude-sonnet-4-5")
    engine = make_engine(api, max_retries=2, **settings)
    with pytest.raises(ModelNotFound) as caught:
        engine.run(make_task(Role.CODER, model=model))
    message = str(caught.value)
    assert f"does not know the model {model} (HTTP 404 not_found_error: model: {model})" in message
    assert f"config key `{key}`" in message and f"such as {instead}" in message, message
    assert "status.anthropic.com" not in message
    assert not caught.value.retryable, "no retry can bring a model back"
    assert len(api.requests) == 1


def test_a_404_that_does_not_name_the_model_points_at_the_base_url(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    client = anthropic.Anthropic(base_url=f"{api.base_url}/api", api_key="test-key", max_retries=0)
    engine = AnthropicEngine(AgentsConfig(max_retries=0), SANDBOX_CFG, client=client)
    with pytest.raises(ModelNotFound) as caught:
        engine.run(make_task(Role.PLANNER))
    message = str(caught.value)
    assert "HTTP 404 (/api/v1/messages)" in message, message
    assert "ANTHROPIC_BASE_URL" in message and "config key `agents.model`" in message
