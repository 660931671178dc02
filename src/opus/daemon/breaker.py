"""Circuit breakers per key (`repo:<path>`, `engine:<name>`, `database:<where>`), pure
over an injected clock.

closed --N consecutive failures--> open --cool-down--> half-open (one trial)
half-open --success--> closed;  half-open --failure--> open again (a new cool-down).
closed --trip--> open at once: a failure that says every try fails until someone acts
(the API refused opus's key), so no N - 1 jobs are spent learning it.

`record_failure` returns True only on the closed → open edge, so the loop sends the
"breaker opened" notification once per outage, not once per failed trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from opus.errors import ConfigError
from opus.seams import Clock

BreakerState = Literal["closed", "open", "half_open"]


def repo_key(repo: Path) -> str:
    """The breaker key of a target repository."""
    return f"repo:{repo}"


def engine_key(name: str) -> str:
    """The breaker key of an agent engine."""
    return f"engine:{name}"


def database_key(url: str) -> str:
    """The breaker key of the registry at `database.url`: where it is, never a password.

    `database:postgresql 127.0.0.1:5432/opus`, `database:sqlite /var/lib/opus/opus.db`.
    """
    parts = urlsplit(url)
    backend = parts.scheme.split("+")[0]
    if backend == "sqlite":
        path = unquote(parts.path)
        return f"database:sqlite {path[1:] if path.startswith('/') else path or ':memory:'}"
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    return f"database:{backend} {where}{parts.path}"


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    trial_at: float | None = None
    """When the half-open trial was handed out; None while no trial is running."""
    last_error: str | None = None


@dataclass(frozen=True)
class OpenCircuit:
    """An open (or half-open) breaker as `opus status` shows it."""

    key: str
    state: BreakerState
    failures: int
    reopens_in_s: float
    """Seconds until the next trial is allowed; 0 when half-open."""
    last_error: str | None


class CircuitBreaker:
    """Counts consecutive failures per key and refuses work while a key is open."""

    def __init__(self, *, failures: int, cooldown_s: float, clock: Clock) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ConfigError(
                "daemon.breaker_failures must be >= 1 and daemon.breaker_cooldown_s > 0; "
                f"got {failures} and {cooldown_s}"
            )
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def __repr__(self) -> str:
        return f"CircuitBreaker(open={self.opened_keys()})"

    def state(self, key: str) -> BreakerState:
        """Where `key` stands now; a pure query (unlike `is_open`)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        if self._clock.monotonic() - circuit.opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    def is_open(self, key: str) -> bool:
        """Whether work for `key` must wait.

        After the cool-down this returns False once (the trial) and True again until
        the trial's outcome is recorded; a trial never reported is replaced after
        another cool-down.
        """
        state = self.state(key)
        if state != "half_open":
            return state == "open"
        circuit = self._circuits[key]
        now = self._clock.monotonic()
        if circuit.trial_at is not None and now - circuit.trial_at < self.cooldown_s:
            return True
        circuit.trial_at = now
        return False

    def record_failure(self, key: str, error: str | None = None) -> bool:
        """Count a failure (and remember `error`); True when this call opened the breaker."""
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        circuit.last_error = error or circuit.last_error
        was_closed = circuit.opened_at is None
        if circuit.failures >= self.failures or not was_closed:
            circuit.opened_at = self._clock.monotonic()
            circuit.trial_at = None
        return was_closed and circuit.opened_at is not None

    def trip(self, key: str, error: str) -> bool:
        """Open `key` now, whatever its count (a new cool-down if it is open already);
        True when this call opened it."""
        circuit = self._circuits.setdefault(key, _Circuit())
        was_closed = circuit.opened_at is None
        circuit.failures += 1
        circuit.last_error = error
        circuit.opened_at = self._clock.monotonic()
        circuit.trial_at = None
        return was_closed

    def record_success(self, key: str) -> None:
        """A success closes the breaker and forgets the failures."""
        self._circuits.pop(key, None)

    def last_error(self, key: str) -> str | None:
        """The error last counted against `key` (None when closed or never said)."""
        circuit = self._circuits.get(key)
        return circuit.last_error if circuit is not None else None

    def opened_keys(self) -> list[str]:
        """Keys that are open or half-open, sorted."""
        return sorted(key for key in self._circuits if self.state(key) != "closed")

    def open_circuits(self) -> list[OpenCircuit]:
        """The open and half-open breakers with their reopen delay and last error."""
        now = self._clock.monotonic()
        found = []
        for key in self.opened_keys():
            circuit = self._circuits[key]
            opened_at = circuit.opened_at if circuit.opened_at is not None else now
            remaining = max(0.0, opened_at + self.cooldown_s - now)
            found.append(OpenCircuit(key, self.state(key), circuit.failures, remaining,
                                     circuit.last_error))
        return found
