"""One error hierarchy. Every message says what is wrong and how to fix it.

Foreign errors (sqlalchemy, git, httpx, anthropic) are wrapped where they enter
(`raise ... from exc`); only the CLI turns these into exit codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opus.seams import AgentResult


class OpusError(Exception):
    """Something went wrong in opus."""

    retryable: bool = True
    """Whether running the job again may heal it. A fault no retry can heal (a bad
    config, a repo without a remote, a refusing guard) fails the job at once instead of
    counting against a circuit breaker."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(OpusError):
    """The configuration is invalid; the message names the key and what is allowed."""

    retryable = False


class UsageError(OpusError):
    """The command line was used wrongly."""

    retryable = False


class NoteError(OpusError):
    """A feature-request note cannot be used as it is."""

    retryable = False


class StoreError(OpusError):
    """The job registry could not be read or written."""


class StoreConflict(StoreError):
    """Two registry transactions collided (a deadlock or a serialization failure).

    Not an outage: the database aborted one of them and running it again succeeds. The
    registry retries such a transaction a few times before this reaches a caller.
    """


class NotFound(OpusError):
    """No such job or feature request."""


class GitError(OpusError):
    """A git command failed."""


class SandboxError(OpusError):
    """A command could not be run in the sandbox."""


class EngineError(OpusError):
    """The agent engine failed (API error, bad reply, exhausted retries)."""

    partial: AgentResult | None = None
    """What the stage spent before it failed (usage, cost, turns of the model calls that
    succeeded), set by the engine when there was any: the pipeline records it so the
    job's and the day's budgets count it, as it does an `AgentFailed`'s `partial`."""


class ModelNotFound(EngineError):
    """The API answered 404 to a model call: the configured model is retired or misspelt.

    A config error, not an outage: every retry would get the same answer, so the job
    fails at once (with a notification) instead of counting against the engine's breaker.
    """

    retryable = False


class RequestRejected(EngineError):
    """The API refused the request itself (HTTP 400 `invalid_request_error`, 413
    `request_too_large`): sent again, the same job builds the same request.

    The job fails at once with the API's message and what to change, instead of going
    back to the queue and counting against the engine's breaker.
    """

    retryable = False


class EngineAccessDenied(EngineError):
    """The API refused opus's credentials or account (401, 403, 402, a credit balance or
    spend limit reached), or there are no credentials at all.

    Not the job's fault, and every other job would meet the same wall: the job goes back
    to the queue without counting toward failing it, and the engine's breaker opens at
    once, so claiming stops until a trial after the cool-down (or a restart or reload)
    finds the key working again.
    """


class BudgetExceeded(OpusError):
    """A cost ceiling was reached."""

    retryable = False


class StageFailed(OpusError):
    """A pipeline stage ended without the result it needs."""

    retryable = False


class NotReady(OpusError):
    """The FR cannot start: its repo, base branch or test command is not usable."""

    retryable = False


class DeliveryBlocked(OpusError):
    """A guard refused to deliver the branch (protected branch, out-of-scope path, secret)."""

    retryable = False


class ForgeError(OpusError):
    """The forge (GitHub, Gitea) refused or failed a request."""


class UnsafePath(OpusError):
    """A file opus was about to read from a worktree is a link, or not a regular file."""

    retryable = False
