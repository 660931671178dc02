"""A stand-in for Anthropic's Messages API, for driving the real `anthropic` SDK in tests.

It is a real HTTP server on 127.0.0.1 (ephemeral port) that answers `POST /v1/messages`
in the shapes the API uses, so the SDK's parsing, headers and retries all run for real.

It checks what a real API would reject: the key (`x-api-key`, or `authorization: Bearer`
as newer SDKs send it) and the `anthropic-version` header,
the body (`model`, `max_tokens`, `messages` alternating and starting with `user`, every
`tool_use` answered by a `tool_result` in the next user turn) and, unless told otherwise,
that `tools` are present. It records every request and plays a script: each entry is a
response dict, an `ApiError`, or a callable `(request_json) -> response | ApiError` (so
a test can assert on the tool_result it received). An `AssertionError` raised inside a
callable is kept in `.failures` and re-raised by `close()`, so it fails the test.

Usage::

    with MessagesAPI([reply(tool_use("bash", {"command": "ls"})), reply(text("done"))]) as api:
        client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=0)
        ...
        assert api.requests[1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "test-key"
"""The key the stand-in accepts (pass it as `api_key=` or `ANTHROPIC_API_KEY`)."""

DEFAULT_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


@dataclass(frozen=True)
class ApiError:
    """An error response in the API's JSON shape: {"type": "error", "error": {...}}."""

    status: int
    type: str
    message: str = "stand-in error"
    headers: dict[str, str] = field(default_factory=dict)


def rate_limited() -> ApiError:
    """429 with `retry-after: 0` (and a tiny `retry-after-ms`, so the SDK retries at once)."""
    return ApiError(
        429, "rate_limit_error", "rate limited", {"retry-after": "0", "retry-after-ms": "5"}
    )


def overloaded() -> ApiError:
    """529 `overloaded_error`, as the API sends when it is busy."""
    return ApiError(529, "overloaded_error", "Overloaded", {"retry-after-ms": "5"})


def server_error() -> ApiError:
    """500 `api_error`."""
    return ApiError(500, "api_error", "Internal server error", {"retry-after-ms": "5"})


Reply = dict[str, Any] | ApiError | Callable[[dict[str, Any]], "dict[str, Any] | ApiError"]

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
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """A message object; stop_reason defaults to tool_use when a tool is used, else end_turn."""
    if stop_reason is None:
        uses_tool = any(block["type"] == "tool_use" for block in content)
        stop_reason = "tool_use" if uses_tool else "end_turn"
    return {
        "id": f"msg_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {**DEFAULT_USAGE, **(usage or {})},
    }


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

    def __init__(self, script: Iterable[Reply] = (), *, require_tools: bool = True) -> None:
        self.script: list[Reply] = list(script)
        self.require_tools = require_tools
        self.requests: list[dict[str, Any]] = []
        """Every request: {"headers": {...lower-case...}, "body": {...}}."""
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

    def handle(self, headers: dict[str, str], raw: bytes) -> Response:
        """Check one request and play the next scripted reply: (status, json, headers)."""
        problem = self._check_headers(headers)
        if problem is not None:
            return _error(problem)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            return _error(ApiError(400, "invalid_request_error", f"body is not JSON: {exc}"))
        with self._lock:
            self.requests.append({"headers": headers, "body": body})
            problem = _check_body(body, require_tools=self.require_tools)
            if problem is not None:
                return _error(ApiError(400, "invalid_request_error", problem))
            if not self.script:
                return _error(
                    ApiError(
                        500,
                        "api_error",
                        "the stand-in's script is exhausted",
                        {"x-should-retry": "false"},
                    )
                )
            step = self.script.pop(0)
        return self._play(step, body)

    def _play(self, step: Reply, body: dict[str, Any]) -> Response:
        if callable(step):
            try:
                step = step(body)
            except AssertionError as exc:
                self.failures.append(exc)
                return _error(
                    ApiError(
                        500,
                        "api_error",
                        f"stand-in assertion failed: {exc}",
                        {"x-should-retry": "false"},
                    )
                )
        if isinstance(step, ApiError):
            return _error(step)
        return 200, step, {"request-id": f"req_{next(_ids):06d}"}

    @staticmethod
    def _check_headers(headers: dict[str, str]) -> ApiError | None:
        # SDK versions differ in how they send the key: `x-api-key`, or a bearer token.
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (headers.get("x-api-key"), bearer):
            return ApiError(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return ApiError(400, "invalid_request_error", "anthropic-version header is required")
        return None


def _error(err: ApiError) -> Response:
    payload = {"type": "error", "error": {"type": err.type, "message": err.message}}
    return err.status, payload, dict(err.headers)


def _check_body(body: Any, *, require_tools: bool) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    if body.get("stream"):
        return "the stand-in does not stream; call messages.create without stream=True"
    if require_tools and not body.get("tools"):
        return "tools: expected the agent's tools in every request"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    return _check_turns(messages)


def _check_turns(messages: list[Any]) -> str | None:
    expected = "user"
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if message.get("role") != expected:
            return f"messages.{index}: expected role {expected!r} (roles must alternate)"
        blocks = message["content"] if isinstance(message["content"], list) else []
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if pending - answered:
            missing = sorted(pending - answered)
            return f"messages.{index}: tool_use ids {missing} have no tool_result"
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        expected = "assistant" if expected == "user" else "user"
    return None


def _handler_for(api: MessagesAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/v1/messages":
                status, payload, headers = _error(ApiError(404, "not_found_error", self.path))
            else:
                lowered = {k.lower(): v for k, v in self.headers.items()}
                status, payload, headers = api.handle(lowered, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler
