"""Adaptive poll delay and PR backoff: exact sequences."""

from __future__ import annotations

import pytest

from opus.daemon.polling import Backoff, PollDelay
from opus.errors import ConfigError


def test_idle_backs_off_geometrically_to_idle_s() -> None:
    poll = PollDelay(active_s=30, idle_s=300)
    assert [poll.next_delay(busy=False) for _ in range(7)] == [30, 60, 120, 240, 300, 300, 300]


def test_busy_keeps_the_active_delay_and_resets_the_backoff() -> None:
    poll = PollDelay(active_s=30, idle_s=300)
    seq = [poll.next_delay(busy) for busy in (False, False, False, True, True, False, False)]
    assert seq == [30, 60, 120, 30, 30, 30, 60]


def test_wake_resets_the_idle_backoff() -> None:
    poll = PollDelay(active_s=10, idle_s=100)
    assert [poll.next_delay(False) for _ in range(4)] == [10, 20, 40, 80]
    poll.wake()
    assert [poll.next_delay(False) for _ in range(3)] == [10, 20, 40]


def test_active_above_idle_is_clamped() -> None:
    poll = PollDelay(active_s=500, idle_s=300)
    assert [poll.next_delay(busy) for busy in (True, False, False)] == [300, 300, 300]


def test_pr_backoff_grows_while_nothing_changes() -> None:
    backoff = Backoff(120, 600)
    seq = [backoff.next_delay(changed) for changed in (False, False, False, False, True, False)]
    assert seq == [120, 240, 480, 600, 120, 120]
    assert backoff.current_s == 240


def test_backoff_default_cap_and_factor() -> None:
    backoff = Backoff(1, factor=3)
    assert [backoff.next_delay(False) for _ in range(4)] == [1, 3, 8, 8]


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 10, 2), (5, -1, 2), (5, 10, 0.5)])
def test_bad_delays_are_config_errors(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ConfigError):
        Backoff(base, cap, factor=factor)
