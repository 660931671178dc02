"""What the Messages-API stand-in's replies add up to, in opus's terms: the tests that
check the budgets compare what opus recorded with what the API reported."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opus.domain import Usage


def billed_usage(replies: Iterable[dict[str, Any]]) -> Usage:
    """The usage reported in `replies` (the stand-in's `.replies`, or some of them), added up."""
    total = Usage()
    for sent in replies:
        usage = sent["usage"]
        total += Usage(
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
            cache_write_tokens=usage.get("cache_creation_input_tokens") or 0,
        )
    return total
