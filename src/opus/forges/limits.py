"""Rate limits as the forges announce them, pure: how long a reply asks opus to wait.

GitHub ("Rate limits for the REST API", docs.github.com) answers a limited request with
403 or 429. A primary limit sets `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch
seconds); a secondary limit may send `retry-after` (seconds), else the client is told to
wait at least a minute and back off exponentially while it persists. Gitea has no limits
of its own, but a proxy in front of it may answer 429 with `retry-after`.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

SECONDARY_WAIT_S = 60.0
"""GitHub: without `retry-after` or a reset time, wait at least one minute."""


def rate_limit_wait(
    status: int, headers: Mapping[str, str], message: str, *, now_epoch: float, attempt: int = 0
) -> float | None:
    """Seconds to wait before asking again, or None when the reply is no rate limit.

    A 403 is a rate limit only when the headers or the message say so; otherwise it is a
    permission problem. `attempt` (0 for the first limit in a row) doubles the fallback
    wait of a secondary limit that names no time.
    """
    if status not in (403, 429):
        return None
    retry_after = _retry_after_s(headers.get("retry-after"), now_epoch)
    if retry_after is not None:
        return retry_after
    reset = _number(headers.get("x-ratelimit-reset"))
    if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
        # The reset is a whole second; one more second makes sure it has passed.
        return max(1.0, float(reset) - now_epoch + 1)
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_WAIT_S * 2.0 ** min(attempt, 5)
    return None


def _retry_after_s(value: str | None, now_epoch: float) -> float | None:
    """`retry-after` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now_epoch)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
