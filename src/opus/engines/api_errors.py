"""What an error answer of the Messages API means for the job, said so an operator can act.

The API answers errors as `{"type": "error", "error": {"type", "message"}, "request_id"}`
with the status codes of Anthropic's "Errors" page. What each becomes (after the SDK's
own retries of 408, 409, 429 and 5xx, or whatever `x-should-retry` says):

- **the key or the account is refused** (401 `authentication_error`, 403
  `permission_error`, 402 `billing_error`; a 400 for a credit balance too low or a spend
  limit reached; a 429 whose `error.details.error_code` is `enforced_spend_limit_reached`;
  no credentials at all) → `EngineAccessDenied`: the job goes back to the queue uncounted
  and the engine's breaker opens at once;
- **the model is unknown** (404 `not_found_error`) → `ModelNotFound`: the job fails once,
  naming the key;
- **the request is refused** (400 `invalid_request_error`, a prompt past the context
  window said so; 413 `request_too_large`; any other 4xx the SDK does not retry) →
  `RequestRejected`: the job fails once, with the API's message and what to change;
- **an outage** (429 `rate_limit_error`, 500 `api_error`, 529 `overloaded_error` left
  after the retries; an unreachable API) → `EngineError`: the job goes back to the queue,
  counted against the breaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anthropic

from opus.engines.base import one_line
from opus.engines.models import instead_of
from opus.errors import EngineAccessDenied, EngineError, ModelNotFound, RequestRejected

ACCOUNT_WIDE_400 = ("credit balance is too low", "usage limits", "spend limit")
"""Words of the 400s the "Errors" page says are about the account, not the request: a
credit balance too low, a spend limit set on the organization or workspace reached."""
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
"""`error.details.error_code` of the 429 that a monthly spend limit sends (no
`retry-after`: retrying does not lift it)."""
PROMPT_TOO_LONG = re.compile(r"prompt is too long: (\d+) tokens > (\d+) maximum")
CONSOLE = "the Claude Console (https://platform.claude.com)"
RESUMES = (
    "until then opus claims no job and queued jobs wait (none is failed for it); it "
    "tries again by itself after daemon.breaker_cooldown_s, and at once after a restart "
    "or `systemctl reload opus`"
)


@dataclass(frozen=True)
class Call:
    """The model call that failed, for the message: whose, which model, set by which key."""

    role: str
    model: str
    key: str
    """The config key that chose the model (`agents.model` or `agents.<role>_model`)."""
    retries: int


def translate(exc: anthropic.AnthropicError, call: Call) -> EngineError:
    """The opus error for an SDK error (see the module docstring)."""
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc, call)
    if isinstance(exc, anthropic.APIConnectionError):
        return EngineError(
            f"cannot reach the Anthropic API after {call.retries} retries ({exc}); check "
            "the network and ANTHROPIC_BASE_URL"
        )
    return EngineError(f"the Anthropic client failed: {exc}; check ANTHROPIC_API_KEY")


def no_credentials() -> EngineAccessDenied:
    """No key, token or credentials for the SDK to send: no call can succeed."""
    return EngineAccessDenied(
        "no Anthropic API key: ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) is not set in "
        "the daemon's environment; put it in opus.env, the service's EnvironmentFile (or "
        f"export it in your shell), and restart opus; {RESUMES}"
    )


def _status_error(exc: anthropic.APIStatusError, call: Call) -> EngineError:
    status, (kind, said) = exc.status_code, error_body(exc)
    answer = f"HTTP {status}{_after(exc, call)} {kind or ''}".rstrip()
    quoted = f"{answer}: {one_line(said, 300)}{_request_id(exc)}"
    if status in (401, 402, 403) or _account_wide(exc, kind, said):
        return _denied(status, quoted, call)
    if status == 404:
        return not_found(kind, said, call)
    if status == 413:
        return RequestRejected(
            f"the Anthropic API refused the {call.role}'s request as too large ({quoted}): "
            "a request may be at most 32 MB, and this conversation carries more tool "
            "output or file content than that; split the feature request into smaller "
            "ones, then `opus retry`"
        )
    if 400 <= status < 500 and not _retried(exc):
        return _rejected(quoted, said, call)
    hint = (
        "check your quota and rate limits and https://status.anthropic.com, then `opus "
        "retry` the job"
    )
    return EngineError(f"the Anthropic API answered {quoted}; {hint}")


def _denied(status: int, quoted: str, call: Call) -> EngineAccessDenied:
    if status == 401:
        return EngineAccessDenied(
            f"the Anthropic API refused opus's key ({quoted}): ANTHROPIC_API_KEY is "
            "invalid, revoked or expired (or ANTHROPIC_BASE_URL points at a service that "
            "wants another key). Set a working key in opus.env, the service's "
            f"EnvironmentFile (or your shell), and restart opus; {RESUMES}"
        )
    if status == 403:
        return EngineAccessDenied(
            f"the Anthropic API refused opus's key access to the model {call.model}, set by "
            f"config key `{call.key}` ({quoted}): give the key's workspace access to that "
            f"model in {CONSOLE}, or set `{call.key}` to a model the key may use; {RESUMES}"
        )
    return EngineAccessDenied(
        f"the Anthropic API refused to serve opus's account ({quoted}): fix the billing, "
        f"credits or spend limits of the organization and workspace in {CONSOLE}; {RESUMES}"
    )


def _rejected(quoted: str, said: str, call: Call) -> RequestRejected:
    too_long = PROMPT_TOO_LONG.search(said)
    if too_long is not None:
        return RequestRejected(
            f"the {call.role}'s conversation no longer fits in the context window of "
            f"{call.model} ({too_long.group(1)} tokens, at most {too_long.group(2)}; the "
            f"API answered {quoted}): it grew with every turn's tool output. Split the "
            "feature request into smaller ones, lower pipeline.max_turns, or set "
            f"`{call.key}` to a model with a larger context window, then `opus retry`"
        )
    return RequestRejected(
        f"the Anthropic API rejected the {call.role}'s request ({quoted}); sent again it "
        "would be rejected again, so the job fails now. The request is built from the model "
        f"(`{call.key}` = {call.model}), agents.max_tokens and the role prompts "
        "(vault/00_system/prompts/): correct the one the message names, then `opus "
        "retry`; if it names none of them, report the message and request id to opus's "
        "maintainers"
    )


def not_found(kind: str | None, said: str, call: Call) -> ModelNotFound:
    """The API does not know the model (retired or misspelt): say so, name the key that
    set it. A 404 that does not name the model is most likely a wrong ANTHROPIC_BASE_URL."""
    model, key = call.model, call.key
    fix = f"set `{key}` to {instead_of(model)}, then `opus retry` the job"
    if kind == "not_found_error" and model in said:
        return ModelNotFound(
            f"the Anthropic API does not know the model {model} (HTTP 404 {kind}: "
            f"{one_line(said, 300)}), set by config key `{key}`: the model is retired or "
            f"its id is misspelt; {fix}"
        )
    return ModelNotFound(
        f"the Anthropic API answered HTTP 404 ({one_line(said, 300)}) to a call of the "
        f"model {model}, set by config key `{key}`: check that ANTHROPIC_BASE_URL is the "
        f"API's root URL and that the model id is right; if the model is retired, {fix}"
    )


def error_body(exc: anthropic.APIStatusError) -> tuple[str | None, str]:
    """(error type, message) from the API's body `{"type": "error", "error": {...}}`; the
    SDK's own message when the body is not of that shape (a proxy's page)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        return (kind if isinstance(kind, str) else None), error["message"]
    return None, exc.message


def _account_wide(exc: anthropic.APIStatusError, kind: str | None, said: str) -> bool:
    """A 400 or 429 that is about the account (credits, spend limits), not this request."""
    if exc.status_code == 400 and kind == "invalid_request_error":
        return any(words in said.lower() for words in ACCOUNT_WIDE_400)
    if exc.status_code == 429 and isinstance(exc.body, dict):
        details = (exc.body.get("error") or {}).get("details")
        return isinstance(details, dict) and details.get("error_code") == SPEND_LIMIT_CODE
    return False


def _after(exc: anthropic.APIStatusError, call: Call) -> str:
    return f" after {call.retries} retries" if call.retries and _retried(exc) else ""


def _request_id(exc: anthropic.APIStatusError) -> str:
    request_id = getattr(exc, "request_id", None)
    return f"; request id {request_id}" if request_id else ""


def _retried(exc: anthropic.APIStatusError) -> bool:
    """Whether the SDK retried this answer (its `_should_retry`): an `x-should-retry`
    header decides; without one, 408, 409, 429 and 5xx are retried, other 4xx are not."""
    header = exc.response.headers.get("x-should-retry")
    if header in ("true", "false"):
        return header == "true"
    return exc.status_code in (408, 409, 429) or exc.status_code >= 500
