"""Circuit breaker over a fake clock: exact state sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.daemon.breaker import CircuitBreaker, engine_key, repo_key
from opus.errors import ConfigError
from opus.testing.clock import FakeClock

KEY = repo_key(Path("/srv/api"))


def make(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failures=3, cooldown_s=600, clock=clock)


def in_trial(clock: FakeClock) -> CircuitBreaker:
    """A breaker that opened, cooled down and has just handed out its one trial."""
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure(KEY)
    clock.advance(600)
    assert not breaker.is_open(KEY)
    return breaker


def assert_reopens_after_a_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    clock.advance(599)
    assert breaker.is_open(KEY)
    clock.advance(1)
    assert not breaker.is_open(KEY)


def test_opens_after_n_consecutive_failures_and_says_so_once() -> None:
    breaker = make(FakeClock())
    assert [breaker.record_failure(KEY) for _ in range(5)] == [False, False, True, False, False]
    assert breaker.is_open(KEY)
    assert breaker.opened_keys() == ["repo:/srv/api"]


def test_a_success_resets_the_count() -> None:
    breaker = make(FakeClock())
    breaker.record_failure(KEY)
    breaker.record_failure(KEY)
    breaker.record_success(KEY)
    assert [breaker.record_failure(KEY) for _ in range(3)] == [False, False, True]


def test_half_open_allows_one_trial_then_closes_on_success() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure(KEY)
    clock.advance(599)
    assert (breaker.state(KEY), breaker.is_open(KEY)) == ("open", True)
    clock.advance(1)
    assert breaker.state(KEY) == "half_open"
    assert [breaker.is_open(KEY) for _ in range(3)] == [False, True, True]
    breaker.record_success(KEY)
    assert (breaker.state(KEY), breaker.is_open(KEY), breaker.opened_keys()) == (
        "closed", False, []
    )


def test_failed_trial_reopens_silently_for_a_new_cooldown() -> None:
    clock = FakeClock()
    breaker = in_trial(clock)
    assert breaker.record_failure(KEY) is False
    assert breaker.state(KEY) == "open"
    assert_reopens_after_a_cooldown(breaker, clock)


def test_a_trial_never_reported_is_replaced_after_another_cooldown() -> None:
    clock = FakeClock()
    breaker = in_trial(clock)
    assert breaker.state(KEY) == "half_open"
    assert_reopens_after_a_cooldown(breaker, clock)


def test_keys_are_independent() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=60, clock=FakeClock())
    assert breaker.record_failure(engine_key("anthropic"))
    assert not breaker.is_open(KEY)
    assert breaker.opened_keys() == ["engine:anthropic"]


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="breaker_failures"):
        CircuitBreaker(failures=0, cooldown_s=60, clock=FakeClock())


def test_a_trip_opens_at_once_says_so_once_and_trials_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock)
    assert breaker.trip(KEY, "key refused") is True, "the first refusal opens it"
    assert breaker.is_open(KEY) and breaker.last_error(KEY) == "key refused"
    assert_reopens_after_a_cooldown(breaker, clock)  # the trial is handed out
    assert breaker.trip(KEY, "key refused again") is False, "no second notification"
    assert breaker.state(KEY) == "open" and breaker.last_error(KEY) == "key refused again"
    assert_reopens_after_a_cooldown(breaker, clock)
    breaker.record_success(KEY)
    assert breaker.state(KEY) == "closed" and breaker.last_error(KEY) is None
