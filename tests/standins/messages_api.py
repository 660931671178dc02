"""A stand-in for Anthropic's Messages API, for driving the real `anthropic` SDK in tests.

It is a real HTTP server on 127.0.0.1 (ephemeral port) that answers `POST /v1/messages`
in the shapes the API uses, so the SDK's parsing, headers and retries all run for real.

It rejects what the real API rejects, with the API's status, error type and wording
(`messages_rules.py`): a bad key (401 `authentication_error`; a test revokes the key it
accepts by changing `api_key`) or missing `anthropic-version`; a model the key may not use
(`forbidden_models`: 403 `permission_error`); an unknown model, or one a test declared
retired (`retired_models`), with the API's 404 `not_found_error` "model: <id>";
`max_tokens` above the model's output limit; tool types the model does not support, or
given the wrong name; more than 4 `cache_control` breakpoints; an empty message other than
a final assistant one, whitespace-only text, a final assistant text ending in whitespace;
a `tool_use` not answered by `tool_result` blocks at the start of the next user message,
and a `tool_result` answering no `tool_use` of the previous assistant message. Unless
told otherwise it also requires `tools` in every request (opus always sends them).

It records every request and plays a script: each entry is a response dict, an
`ApiError`, a `Hang` (no answer at all; it sees when the client goes away), or a callable
`(request_json) -> response | ApiError | Hang` (so a test can assert on the tool_result it
received). Every answer carries a `request-id` header, and an error's body the same id
as `request_id`, as the API's do. Usage is what the real API would report: input and
prompt-cache tokens are computed from the request (`PromptCache`: nothing is cached below
the model's minimum cacheable prefix, and a later request reads what an earlier one
wrote), output tokens never exceed `max_tokens` (a `max_tokens` stop uses all of them).
A script may set usage fields itself, but not impossible ones (more output than
`max_tokens`, cache tokens on a prefix too short to cache). An `AssertionError` raised
inside a callable, or an impossible scripted reply, is kept in `.failures` and re-raised
by `close()`, so it fails the test.

Usage::

    with MessagesAPI([reply(tool_use("bash", {"command": "ls"})), reply(text("done"))]) as api:
        client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=0)
        ...
        assert api.requests[1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.standins.messages_rules import (
    Problem,
    PromptCache,
    check_body,
    model_of,
    prefix_of,
    retired,
    tokens_of,
    unknown_model,
)

API_KEY = "test-key"
"""The key the stand-in accepts (pass it as `api_key=` or `ANTHROPIC_API_KEY`)."""


@dataclass(frozen=True)
class ApiError:
    """An error response in the API's JSON shape:
    {"type": "error", "error": {"type", "message"[, "details"]}, "request_id": "req_…"}."""

    status: int
    type: str
    message: str = "stand-in error"
    headers: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] | None = None
    """`error.details`, which the API sends with some errors (a spend limit's 429)."""


def rate_limited(retry_after_s: int = 1) -> ApiError:
    """429 `rate_limit_error` with the headers the API sends (`retry-after` in seconds)."""
    return ApiError(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage.",
        {
            "retry-after": str(retry_after_s),
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
        },
    )


def overloaded(retry_after_s: int | None = None) -> ApiError:
    """529 `overloaded_error`, as the API sends when it is busy, with `x-should-retry:
    true`; with `retry-after` when given (else the SDK backs off on its own)."""
    headers = {"x-should-retry": "true"}
    if retry_after_s is not None:
        headers["retry-after"] = str(retry_after_s)
    return ApiError(529, "overloaded_error", "Overloaded", headers)


def server_error() -> ApiError:
    """500 `api_error`."""
    return ApiError(500, "api_error", "Internal server error")


def invalid_request(message: str) -> ApiError:
    """400 `invalid_request_error` with the API's `message`."""
    return ApiError(400, "invalid_request_error", message)


def prompt_too_long(tokens: int, maximum: int = 200_000) -> ApiError:
    """400 for a request whose input no longer fits in the model's context window, in the
    API's words."""
    return invalid_request(f"prompt is too long: {tokens} tokens > {maximum} maximum")


def request_too_large() -> ApiError:
    """413 `request_too_large`: a request over 32 MB, refused before it reaches the API
    servers."""
    return ApiError(
        413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
    )


def credit_balance_too_low() -> ApiError:
    """The 400 the API sends for every request of an account out of credits."""
    return invalid_request(
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits."
    )


def spend_limit_reached() -> ApiError:
    """The 429 of an organization past its monthly spend limit: `error.details.error_code`
    says so, and there is no `retry-after` (waiting minutes does not lift it)."""
    return ApiError(
        429, "rate_limit_error",
        "You have reached your specified API usage limits. You will regain access on "
        "2026-12-01 at 00:00 UTC.",
        details={"error_code": "enforced_spend_limit_reached"},
    )  # fmt: skip


PERMISSION_DENIED = "Your API key does not have permission to use the specified resource."


class Hang:
    """A reply that never comes: the stand-in accepts the request, sends nothing, and holds
    the connection until the client closes it or `limit_s` passes (then it closes it).

    `accepted` is set when a request is being held, `closed` when the client went away;
    `closed_at` is when the stand-in saw that (monotonic). One `Hang` may hold several
    requests (the SDK's retries); the events tell of the latest.
    """

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.accepted = threading.Event()
        self.closed = threading.Event()
        self.closed_at: float | None = None

    def hold(self, connection: socket.socket) -> None:
        """Wait (bounded) for the client to close `connection`; record when it did."""
        self.closed.clear()
        self.accepted.set()
        deadline = time.monotonic() + self.limit_s
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([connection], [], [], min(left, 0.1))
            if not readable:
                continue
            try:
                gone = connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:  # reset by the peer: gone as well
                gone = True
            if gone:
                self.closed_at = time.monotonic()
                self.closed.set()
                return
            time.sleep(0.05)  # the client sent more (it should not): keep holding


Reply = (
    dict[str, Any]
    | ApiError
    | Hang
    | Callable[[dict[str, Any]], "dict[str, Any] | ApiError | Hang"]
)

Response = tuple[int, dict[str, Any], dict[str, str]]
"""(HTTP status, JSON body, extra headers)."""

_ids = itertools.count(1)


def text(value: str) -> dict[str, Any]:
    """A `text` content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, tool_input: dict[str, Any], *, id: str | None = None) -> dict[str, Any]:
    """A `tool_use` content block with a fresh id (or the one given)."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{next(_ids):04d}",
        "name": name,
        "input": tool_input,
    }


def reply(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A message object; stop_reason defaults to tool_use when a tool is used, else end_turn.

    `usage` sets only the fields given; the stand-in computes the rest from the request.
    """
    if stop_reason is None:
        uses_tool = any(block["type"] == "tool_use" for block in content)
        stop_reason = "tool_use" if uses_tool else "end_turn"
    return {
        "id": f"msg_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(usage or {}),
    }


def empty_reply() -> dict[str, Any]:
    """An `end_turn` with no content at all, as models sometimes send after tool results."""
    return reply(stop_reason="end_turn")


def refusal(said: str = "I can't help with that.") -> dict[str, Any]:
    """The model declined (`stop_reason: refusal`)."""
    return reply(text(said), stop_reason="refusal")


def paused(*content: dict[str, Any]) -> dict[str, Any]:
    """`pause_turn`: the turn is unfinished; the client sends it back to continue."""
    return reply(*content, stop_reason="pause_turn")


def cut_tool_call(
    name: str, partial_input: dict[str, Any], *said: dict[str, Any]
) -> dict[str, Any]:
    """`max_tokens` in the middle of a tool call: the last block is an incomplete tool_use."""
    return reply(*said, tool_use(name, partial_input), stop_reason="max_tokens")


def context_window_exceeded(said: str = "Let me look at the next") -> dict[str, Any]:
    """`model_context_window_exceeded`: the reply filled the model's context window."""
    return reply(text(said), stop_reason="model_context_window_exceeded")


def last_tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the request's latest user turn."""
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return []
    return [block for block in content if block.get("type") == "tool_result"]


def tool_result_text(block: dict[str, Any]) -> str:
    """The text of a tool_result block (its content is a string or a list of text blocks)."""
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


class MessagesAPI:
    """The stand-in server. Use as a context manager (or `start()`/`close()`)."""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        require_tools: bool = True,
        retired_models: Iterable[str] = (),
    ) -> None:
        self.script: list[Reply] = list(script)
        self.require_tools = require_tools
        self.retired_models: set[str] = set(retired_models)
        """Model ids (aliases or dated) answered as the API answers a retired model: 404."""
        self.forbidden_models: set[str] = set()
        """Model ids the key may not use: 403 `permission_error`."""
        self.api_key = API_KEY
        """The one key accepted; any other is answered 401 (set it to revoke `API_KEY`)."""
        self.refused = 0
        """How many requests were answered 401 (bad key) or 400 (no `anthropic-version`)."""
        self.requests: list[dict[str, Any]] = []
        """Every request: {"headers": {...lower-case...}, "body": {...}, "at": monotonic}."""
        self.replies: list[dict[str, Any]] = []
        """Every successful reply as sent, with the usage the stand-in reported."""
        self.cache = PromptCache()
        self.failures: list[BaseException] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The URL to hand to the SDK as `base_url` / ANTHROPIC_BASE_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the requests, in order."""
        return [request["body"] for request in self.requests]

    def add(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self.script.extend(replies)

    def start(self) -> MessagesAPI:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the server (bounded) and re-raise the first assertion a callable failed."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self.failures:
            raise self.failures[0]

    def __enter__(self) -> MessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ request handling

    def handle(self, headers: dict[str, str], raw: bytes) -> Response | Hang:
        """Check one request and play the next scripted reply: (status, json, headers).

        Requests refused for their headers are only counted (`refused`), as the API
        refuses them before reading the body.
        """
        problem = self._check_headers(headers)
        if problem is not None:
            with self._lock:
                self.refused += 1
            return _error(problem)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            return _error(ApiError(400, "invalid_request_error", f"body is not JSON: {exc}"))
        with self._lock:
            self.requests.append({"headers": headers, "body": body, "at": time.monotonic()})
            rejected = (
                self._retired(body)
                or self._forbidden(body)
                or check_body(body, require_tools=self.require_tools)
            )
            if rejected is not None:
                return _error(ApiError(rejected.status, rejected.type, rejected.message))
            if not self.script:
                return self._broken("the stand-in's script is exhausted")
            step = self.script.pop(0)
        return self._play(step, body)

    def _play(self, step: Reply, body: dict[str, Any]) -> Response | Hang:
        if callable(step):
            try:
                step = step(body)
            except AssertionError as exc:
                self.failures.append(exc)
                return self._broken(f"stand-in assertion failed: {exc}")
        if isinstance(step, ApiError):
            return _error(step)
        if isinstance(step, Hang):
            return step
        try:
            message = self._complete(step, body)
        except AssertionError as exc:
            self.failures.append(exc)
            return self._broken(f"impossible scripted reply: {exc}")
        with self._lock:
            self.replies.append(message)
        return 200, message, {}

    def _complete(self, step: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The scripted message with the model and the usage the real API would report."""
        model = model_of(body["model"])
        assert model is not None
        scripted = dict(step.get("usage") or {})
        with self._lock:
            usage = self.cache.usage(body, model)
        if step["stop_reason"] == "max_tokens":
            usage["output_tokens"] = body["max_tokens"]
        else:
            usage["output_tokens"] = min(tokens_of(step["content"]), body["max_tokens"])
        output = scripted.get("output_tokens", usage["output_tokens"])
        assert output <= body["max_tokens"], (
            f"a reply of {output} output tokens, but the request's max_tokens is "
            f"{body['max_tokens']}"
        )
        caches = scripted.get("cache_creation_input_tokens", 0) + scripted.get(
            "cache_read_input_tokens", 0
        )
        cacheable = prefix_of(body).cacheable(model)
        assert caches <= cacheable, (
            f"{caches} cache tokens, but only {cacheable} tokens of this request can be "
            f"cached ({body['model']} caches nothing below {model.min_cache_tokens})"
        )
        return {**step, "model": step.get("model", body["model"]), "usage": {**usage, **scripted}}

    def _retired(self, body: Any) -> Problem | None:
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and retired(model, self.retired_models):
            return unknown_model(model)
        return None

    def _forbidden(self, body: Any) -> Problem | None:
        model = body.get("model") if isinstance(body, dict) else None
        if model in self.forbidden_models:
            return Problem(403, "permission_error", PERMISSION_DENIED)
        return None

    def _broken(self, message: str) -> Response:
        """A 500 the SDK will not retry: the test itself is wrong."""
        return _error(ApiError(500, "api_error", message, {"x-should-retry": "false"}))

    def _check_headers(self, headers: dict[str, str]) -> ApiError | None:
        # SDK versions differ in how they send the key: `x-api-key`, or a bearer token.
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (headers.get("x-api-key"), bearer):
            return ApiError(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return ApiError(400, "invalid_request_error", "anthropic-version header is required")
        return None


def _error(err: ApiError) -> Response:
    error: dict[str, Any] = {"type": err.type, "message": err.message}
    if err.details is not None:
        error["details"] = err.details
    return err.status, {"type": "error", "error": error}, dict(err.headers)


def _handler_for(api: MessagesAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/v1/messages":
                status, payload, headers = _error(ApiError(404, "not_found_error", self.path))
            else:
                lowered = {k.lower(): v for k, v in self.headers.items()}
                played = api.handle(lowered, raw)
                if isinstance(played, Hang):
                    played.hold(self.connection)
                    self.close_connection = True
                    return
                status, payload, headers = played
            request_id = f"req_{next(_ids):06d}"
            if payload.get("type") == "error":
                payload = {**payload, "request_id": request_id}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("request-id", request_id)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler
