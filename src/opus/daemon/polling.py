"""Adaptive poll delays, pure: no clock, no sleeping; the loop asks and then waits.

`Backoff` is the core: a delay that doubles while nothing happens, up to a cap, and drops
back to its base when something does. `PollDelay` is the daemon's main loop cadence
built on it (`daemon.poll_active_s` / `daemon.poll_idle_s`); PR polling uses a `Backoff`
from `pr.poll_s` directly.
"""

from __future__ import annotations

from opus.errors import ConfigError


class Backoff:
    """A delay growing geometrically while nothing changes, reset by a change.

    Calls `next_delay(changed=False)` give base, base*f, base*f^2, … capped at `max_s`;
    `next_delay(changed=True)` or `reset()` start again at `base_s`.
    """

    def __init__(self, base_s: float, max_s: float | None = None, *, factor: float = 2.0) -> None:
        cap = base_s * 8 if max_s is None else max_s
        if base_s <= 0 or cap <= 0:
            raise ConfigError(f"poll delays must be positive; got base {base_s}, max {cap}")
        if factor < 1:
            raise ConfigError(f"backoff factor must be at least 1; got {factor}")
        self.base_s = min(base_s, cap)
        self.max_s = cap
        self.factor = factor
        self._current = self.base_s

    def __repr__(self) -> str:
        return f"Backoff(base_s={self.base_s}, max_s={self.max_s}, current={self._current})"

    @property
    def current_s(self) -> float:
        """The delay the next unchanged call will return."""
        return self._current

    def next_delay(self, changed: bool) -> float:
        """The delay before the next check, given whether the last check saw a change."""
        if changed:
            self.reset()
            return self.base_s
        delay = self._current
        self._current = min(self._current * self.factor, self.max_s)
        return delay

    def reset(self) -> None:
        """Start again at `base_s`."""
        self._current = self.base_s


class PollDelay:
    """The loop's cadence: `active_s` while work runs, backing off (doubling) to `idle_s` when idle.

    A file event calls `wake()`, so the next idle delay starts short again.
    """

    def __init__(self, active_s: float, idle_s: float) -> None:
        self._backoff = Backoff(active_s, idle_s)

    def __repr__(self) -> str:
        return f"PollDelay(next_idle_s={self._backoff.current_s})"

    def next_delay(self, busy: bool) -> float:
        """Seconds to wait before the next pass; `busy` when any job is running."""
        return self._backoff.next_delay(changed=busy)

    def wake(self) -> None:
        """Something happened (a vault file changed): poll briskly again."""
        self._backoff.reset()
