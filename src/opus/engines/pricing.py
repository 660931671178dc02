"""What a model call costs: a built-in price table, overridable by `agents.prices`.

Prices are USD per million tokens. An unknown model is charged at the most expensive
known prices (and a warning is logged once), so a missing entry can only over-estimate a
budget, never let it run free.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

from opus.domain import Usage
from opus.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, usage: Usage) -> float:
        """The USD cost of `usage` at these prices."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
        ) / 1_000_000


_OPUS_4 = Prices(15.0, 75.0, 1.50, 18.75)
_OPUS_45 = Prices(5.0, 25.0, 0.50, 6.25)
_SONNET = Prices(3.0, 15.0, 0.30, 3.75)
_HAIKU_45 = Prices(1.0, 5.0, 0.10, 1.25)
_HAIKU_35 = Prices(0.80, 4.0, 0.08, 1.00)

# cache_write is the 5-minute ephemeral cache write price (what opus asks for).
PRICE_TABLE: dict[str, Prices] = {
    "claude-opus-4-6": _OPUS_45,
    "claude-opus-4-5": _OPUS_45,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4": _OPUS_4,
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4-0": _SONNET,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    "claude-haiku-4-5": _HAIKU_45,
    "claude-3-5-haiku": _HAIKU_35,
}
MOST_EXPENSIVE = max(PRICE_TABLE.values(), key=lambda p: (p.output, p.input))
# Dated snapshots ("claude-sonnet-4-5-20250929") and "-latest" aliases price like their base.
_SUFFIX = re.compile(r"-(\d{8}|latest)$")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def prices_for(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Prices:
    """The prices of `model`: `overrides` (agents.prices) first, then the built-in table."""
    if overrides and model in overrides:
        return _from_override(model, overrides[model])
    base = _SUFFIX.sub("", model)
    if overrides and base in overrides:
        return _from_override(base, overrides[base])
    known = PRICE_TABLE.get(base)
    if known is not None:
        return known
    _warn_once(model)
    return MOST_EXPENSIVE


def cost_usd(
    model: str, usage: Usage, overrides: Mapping[str, Mapping[str, float]] | None = None
) -> float:
    """The USD cost of `usage` on `model`."""
    return prices_for(model, overrides).cost(usage)


def format_usd(amount: float) -> str:
    """`$1.23`, or enough decimals that a small amount is not shown as `$0.00`."""
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:.2f}"
    return "$" + f"{amount:.6f}".rstrip("0")


def _from_override(model: str, entry: Mapping[str, float]) -> Prices:
    names = [f.name for f in fields(Prices)]
    unknown = sorted(set(entry) - set(names))
    missing = [name for name in names if name not in entry]
    if unknown or missing:
        raise ConfigError(
            f"config key `agents.prices.{model}` must give exactly {', '.join(names)} "
            f"(USD per million tokens); missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    values = {name: float(entry[name]) for name in names}
    if any(value < 0 for value in values.values()):
        raise ConfigError(f"config key `agents.prices.{model}`: prices cannot be negative")
    return Prices(**values)


def _warn_once(model: str) -> None:
    with _warned_lock:
        if model in _warned:
            return
        _warned.add(model)
    log.warning(
        "no price known for model %s; charging the most expensive known prices (%s). "
        "Set agents.prices.%s to the real prices.",
        model,
        MOST_EXPENSIVE,
        model,
    )
