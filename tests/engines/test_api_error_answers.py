"""What each error answer of the Messages API becomes, through the real SDK.

The stand-in answers as the API does (status, `{"type": "error", "error": {...},
"request_id": ...}`, `request-id`, `retry-after`, `x-should-retry`); the engine must tell
a refused key (no job's fault: stop claiming) from a refused request (the job's: fail it
once) from a passing outage (retry).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest

from opus.config import AgentsConfig
from opus.domain import Role
from opus.engines.anthropic_engine import AnthropicEngine
from opus.errors import EngineAccessDenied, EngineError, RequestRejected
from opus.seams import AgentTask
from tests.engines.conftest import SANDBOX_CFG, make_engine
from tests.standins.messages_api import (
    API_KEY,
    ApiError,
    MessagesAPI,
    credit_balance_too_low,
    invalid_request,
    overloaded,
    prompt_too_long,
    rate_limited,
    reply,
    request_too_large,
    server_error,
    spend_limit_reached,
    text,
)

TaskFactory = Callable[..., AgentTask]


def test_a_refused_key_stops_the_engine_without_blaming_the_job(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.api_key = "sk-ant-another-key"  # the key opus sends was revoked
    with pytest.raises(EngineAccessDenied) as caught:
        make_engine(api, max_retries=2).run(make_task(Role.PLANNER))
    message = str(caught.value)
    assert "HTTP 401 authentication_error: invalid x-api-key; request id req_" in message
    assert "ANTHROPIC_API_KEY is invalid, revoked or expired" in message, message
    assert "restart opus" in message and "queued jobs wait" in message
    assert caught.value.retryable, "the job is not at fault: it must not be failed"
    assert api.refused == 1, "the SDK does not retry a 401"


def test_a_model_the_key_may_not_use_names_the_key_that_chose_it(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.forbidden_models.add("claude-opus-4-6")
    engine = make_engine(api, max_retries=2, coder_model="claude-opus-4-6")
    with pytest.raises(EngineAccessDenied) as caught:
        engine.run(make_task(Role.CODER, model="claude-opus-4-6"))
    message = str(caught.value)
    assert "HTTP 403 permission_error: Your API key does not have permission" in message
    assert "model claude-opus-4-6, set by config key `agents.coder_model`" in message, message
    assert len(api.requests) == 1


def test_no_key_at_all_is_access_denied_before_any_call(
    api: MessagesAPI, make_task: TaskFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials file for the SDK to find
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    engine = AnthropicEngine(AgentsConfig(max_retries=0), SANDBOX_CFG)
    with pytest.raises(EngineAccessDenied, match=r"ANTHROPIC_API_KEY .* is not set"):
        engine.run(make_task(Role.PLANNER))
    assert api.requests == [] and api.refused == 0


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (credit_balance_too_low(), "Your credit balance is too low"),
        (spend_limit_reached(), "You have reached your specified API usage limits"),
        (ApiError(402, "billing_error", "Your payment method was declined."), "declined"),
    ],
)
def test_an_account_the_api_will_not_serve_is_access_denied(
    make_task: TaskFactory, answer: ApiError, says: str
) -> None:
    with MessagesAPI([answer] * 2) as api, pytest.raises(EngineAccessDenied) as caught:
        make_engine(api, max_retries=1).run(make_task(Role.CODER))
    message = str(caught.value)
    assert says in message and "Claude Console" in message, message
    assert f"HTTP {answer.status}" in message


def test_a_rejected_request_fails_the_job_with_the_apis_message(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    said = "tools.0.custom.input_schema: JSON schema is invalid"
    api.add(invalid_request(said), reply(text("never sent")))
    with pytest.raises(RequestRejected) as caught:
        make_engine(api, max_retries=2).run(make_task(Role.CODER))
    message = str(caught.value)
    assert f"HTTP 400 invalid_request_error: {said}; request id req_" in message, message
    assert "(`agents.model` = claude-sonnet-4-6)" in message and "`opus retry`" in message
    assert not caught.value.retryable, "the same job would send the same request"
    assert len(api.requests) == 1


def test_a_prompt_past_the_context_window_says_so(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(prompt_too_long(215_432, 200_000))
    engine = make_engine(api, planner_model="claude-sonnet-4-6")
    with pytest.raises(RequestRejected) as caught:
        engine.run(make_task(Role.PLANNER))
    message = str(caught.value)
    assert "planner's conversation no longer fits in the context window of " in message
    assert "(215432 tokens, at most 200000" in message, message
    assert "pipeline.max_turns" in message and "`agents.planner_model`" in message


def test_a_request_over_the_size_limit_fails_the_job(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(request_too_large())
    with pytest.raises(RequestRejected) as caught:
        make_engine(api, max_retries=2).run(make_task(Role.CODER))
    message = str(caught.value)
    assert "HTTP 413 request_too_large" in message and "32 MB" in message, message
    assert len(api.requests) == 1


@pytest.mark.parametrize("failure", [lambda: rate_limited(1), lambda: overloaded(1)])
def test_retry_after_is_waited_for(
    api: MessagesAPI, make_task: TaskFactory, failure: Callable[[], ApiError]
) -> None:
    api.add(failure(), reply(text("done")))
    assert make_engine(api, max_retries=2).run(make_task(Role.CODER)).stop_reason == "end_turn"
    first, second = api.requests
    # Without retry-after the SDK's first backoff is 0.5 s at most, jitter included.
    assert second["at"] - first["at"] >= 0.95


@pytest.mark.parametrize("failure", [server_error, overloaded, rate_limited])
def test_an_outage_left_after_the_retries_stays_retryable(
    make_task: TaskFactory, failure: Callable[[], ApiError]
) -> None:
    with MessagesAPI([failure()] * 2) as api, pytest.raises(EngineError) as caught:
        make_engine(api, max_retries=1).run(make_task(Role.CODER))
    assert type(caught.value) is EngineError, "neither the key's fault nor the request's"
    assert caught.value.retryable
    assert "after 1 retries" in str(caught.value) and len(api.requests) == 2


def test_every_answer_carries_a_request_id() -> None:
    with MessagesAPI([server_error()], require_tools=False) as api:
        client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(
                model="claude-sonnet-4-6", max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
            )  # fmt: skip
    body = caught.value.body
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert isinstance(body, dict) and body["request_id"] == caught.value.request_id
