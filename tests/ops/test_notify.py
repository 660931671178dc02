"""AppriseNotifier against a real HTTP server on loopback, through apprise's json://."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from opus import notify
from opus.notify import AppriseNotifier, check_urls
from opus.seams import NotifyKind
from opus.testing.clock import FakeClock
from opus.testing.notifier import RecordingNotifier
from tests.ops.httpsink import Sink, http_sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    with http_sink() as running:
        yield running


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but not listening: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"json://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_notification_arrives_with_title_and_body(sink: Sink, tmp_path: Path) -> None:
    notifier = AppriseNotifier([sink.url], tmp_path / "outbox", clock=FakeClock())

    notifier.notify(*notify.job_failed("FR-061", "tests failed 3 times"))

    assert len(sink.received) == 1
    assert sink.received[0]["title"] == "opus: FR-061 failed"
    assert "tests failed 3 times" in sink.received[0]["message"]
    assert "opus retry FR-061" in sink.received[0]["message"]
    assert notifier.pending() == []
    assert list((tmp_path / "outbox").glob("*.json")) == []


def test_server_error_keeps_the_entry_and_backs_off(sink: Sink, tmp_path: Path) -> None:
    sink.status = 500
    clock = FakeClock()
    notifier = AppriseNotifier([sink.url], tmp_path / "outbox", clock=clock, retry_base_s=30)

    notifier.notify(*notify.stage_stuck("FR-7", "code", 31))  # must not raise

    [entry] = notifier.pending()
    assert (entry.attempts, entry.title) == (1, "opus: FR-7 stuck in code")
    assert entry.next_attempt_at == "2026-01-01T00:00:30+00:00"
    assert notifier.flush() == 0 and len(sink.received) == 1  # not due yet: no request
    clock.advance(30)
    assert notifier.flush() == 0
    assert len(sink.received) == 2
    [entry] = notifier.pending()
    assert entry.attempts == 2
    assert entry.next_attempt_at == "2026-01-01T00:01:30+00:00"  # 30 s later + 60 s


def test_refused_port_does_not_raise(refused_url: str, tmp_path: Path) -> None:
    notifier = AppriseNotifier([refused_url], tmp_path / "outbox", clock=FakeClock())

    notifier.notify(*notify.recovered(2))

    [entry] = notifier.pending()
    assert entry.kind == "recovered" and entry.last_error


def test_a_restarted_notifier_sends_what_was_owed(sink: Sink, tmp_path: Path) -> None:
    clock = FakeClock()
    sink.status = 503
    AppriseNotifier([sink.url], tmp_path / "outbox", clock=clock).notify(
        *notify.pr_opened("FR-9", "Add caching", "https://example.invalid/pr/9")
    )
    sink.status = 200
    clock.advance(3600)

    restarted = AppriseNotifier([sink.url], tmp_path / "outbox", clock=clock)
    assert restarted.flush() == 1

    assert [body["title"] for body in sink.received] == ["opus: FR-9 ready for review"] * 2
    assert restarted.pending() == []


def test_invalid_url_is_reported_and_does_not_block_the_good_one(
    sink: Sink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [sink.url, "nosuchscheme://token@host", "not a url"]

    problems = check_urls(urls)

    assert len(problems) == 2
    assert problems[0].startswith("notify.urls[1] (nosuchscheme://…)")
    assert "token" not in problems[0]
    assert problems[1].startswith("notify.urls[2]")
    with caplog.at_level(logging.ERROR, logger="opus.notify"):
        notifier = AppriseNotifier(urls, tmp_path / "outbox", clock=FakeClock())
        notifier.notify(*notify.budget_hit("daily", 51.5, 50))  # the first send reports them
        notifier.notify(*notify.budget_hit("daily", 52.5, 50))
    assert len([r for r in caplog.records if "not a valid apprise URL" in r.message]) == 2
    assert [body["title"] for body in sink.received] == ["opus: daily budget reached"] * 2
    assert notifier.pending() == []


def test_a_url_already_reached_is_not_sent_twice(sink: Sink, tmp_path: Path) -> None:
    clock = FakeClock()
    with http_sink() as flaky:
        flaky.status = 500
        notifier = AppriseNotifier([sink.url, flaky.url], tmp_path / "outbox", clock=clock)
        notifier.notify(*notify.breaker_opened("repo:/srv/api", 3, 600))
        assert (len(sink.received), len(flaky.received)) == (1, 1)
        flaky.status = 200
        clock.advance(30)
        assert notifier.flush() == 1
        assert (len(sink.received), len(flaky.received)) == (1, 2)
    assert notifier.pending() == []


def test_gives_up_after_a_day_with_a_log_line(
    refused_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    notifier = AppriseNotifier([refused_url], tmp_path / "outbox", clock=clock)
    notifier.notify(*notify.job_failed("FR-1", "boom"))
    clock.advance(25 * 3600)

    with caplog.at_level(logging.ERROR, logger="opus.notify"):
        assert notifier.flush() == 1

    assert notifier.pending() == []
    assert any("giving up" in r.message and "FR-1" in r.message for r in caplog.records)


def test_backoff_is_capped(refused_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    notifier = AppriseNotifier(
        [refused_url], tmp_path / "outbox", clock=clock, retry_base_s=10, retry_max_s=25
    )
    notifier.notify("info", "opus: test", "body")
    gaps = []
    for _ in range(3):
        [entry] = notifier.pending()
        gaps.append(entry.next_attempt_at)
        clock.advance(25)
        notifier.flush()
    assert gaps == [
        "2026-01-01T00:00:10+00:00",  # 10 s
        "2026-01-01T00:00:45+00:00",  # 20 s after the retry at 00:25
        "2026-01-01T00:01:15+00:00",  # 25 s after 00:50 (40 s, capped)
    ]


def test_corrupt_outbox_file_is_set_aside(sink: Sink, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "20260101-bad.json").write_text("{not json")
    notifier = AppriseNotifier([sink.url], outbox, clock=FakeClock())

    assert notifier.flush() == 0

    assert (outbox / "20260101-bad.bad").read_text() == "{not json"
    assert not (outbox / "20260101-bad.json").exists()


def test_outbox_entry_is_plain_json_without_the_url(refused_url: str, tmp_path: Path) -> None:
    notifier = AppriseNotifier([refused_url], tmp_path / "outbox", clock=FakeClock())
    notifier.notify(*notify.job_failed("FR-2", "x"))

    [path] = (tmp_path / "outbox").glob("*.json")
    data = json.loads(path.read_text())
    assert data["title"] == "opus: FR-2 failed"
    assert refused_url.split("//")[1] not in path.read_text()


def test_without_urls_nothing_is_stored(tmp_path: Path) -> None:
    notifier = AppriseNotifier([], tmp_path / "outbox", clock=FakeClock())
    notifier.notify("info", "t", "b")
    assert not (tmp_path / "outbox").exists()


def test_messages_name_the_fr_and_use_known_kinds() -> None:
    messages = [
        notify.pr_opened("FR-61", "Rate limits", "https://x.invalid/1"),
        notify.job_failed("FR-61", "reason"),
        notify.stage_stuck("FR-61", "test", 45),
        notify.recovered(1),
        notify.budget_hit("FR-61", 5.2, 5),
        notify.breaker_opened("engine:anthropic", 3, 600),
    ]
    assert {m.kind for m in messages} <= set(get_args(NotifyKind))
    assert all("FR-61" in m.title for m in messages[:3])
    assert "1 job " in messages[3].title
    assert "$5.20 of its $5.00" in messages[4].body
    assert "10 minutes" in messages[5].body


def test_recording_notifier_records_in_order() -> None:
    recorder = RecordingNotifier()
    recorder.notify(*notify.recovered(3))
    recorder.notify(*notify.job_failed("FR-1", "x"))
    assert recorder.kinds() == ["recovered", "failed"]
    assert recorder.sent[1][1] == "opus: FR-1 failed"


class _Died(Exception):
    """The process died between two URLs."""


def test_a_url_reached_before_a_crash_is_not_sent_again(sink: Sink, tmp_path: Path) -> None:
    clock = FakeClock()
    with http_sink() as second:
        urls = [sink.url, second.url]
        calls = []

        def die_before_the_second(limit: int = 2) -> None:
            calls.append(1)
            if len(calls) == limit:
                raise _Died

        dying = AppriseNotifier(urls, tmp_path / "outbox", clock=clock)
        dying._store("failed", "opus: FR-3 failed", "why")
        with pytest.raises(_Died):
            dying.flush(before_send=die_before_the_second)
        assert (len(sink.received), len(second.received)) == (1, 0)

        restarted = AppriseNotifier(urls, tmp_path / "outbox", clock=clock)
        assert restarted.flush() == 1
        assert (len(sink.received), len(second.received)) == (1, 1)


def test_the_failure_reason_is_apprises_own(
    sink: Sink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink.status = 500
    notifier = AppriseNotifier([sink.url], tmp_path / "outbox", clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="opus.notify"):
        notifier.notify(*notify.job_failed("FR-4", "x"))
    [entry] = notifier.pending()
    assert entry.last_error is not None
    assert "notify.urls #1" in entry.last_error and "500" in entry.last_error
    assert any("500" in r.getMessage() for r in caplog.records)


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A port that accepts connections and never answers (apprise waits 4 s to read)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"json://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_started_notify_only_stores_and_a_thread_sends(
    sink: Sink, hung_url: str, tmp_path: Path
) -> None:
    notifier = AppriseNotifier([hung_url, sink.url], tmp_path / "outbox", clock=FakeClock())
    notifier.start()
    try:
        started = time.monotonic()
        notifier.notify(*notify.recovered(1))
        took = time.monotonic() - started
        print(f"notify() with a hung URL took {took:.3f} s")
        assert took < 1.0  # the hung URL alone holds a send for 4 s
        deadline = time.monotonic() + 15
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["title"] for m in sink.received] == ["opus: recovered 1 job after a restart"]
    finally:
        notifier.stop()


def test_two_notifiers_on_one_outbox_never_send_an_entry_twice(sink: Sink, tmp_path: Path) -> None:
    # A reload builds a new notifier while the old one may still be sending.
    clock = FakeClock()
    sink.status = 500
    old = AppriseNotifier([sink.url], tmp_path / "outbox", clock=clock)
    old.notify(*notify.job_failed("FR-5", "x"))
    new = AppriseNotifier([sink.url], tmp_path / "outbox", clock=clock)
    clock.advance(60)
    sink.status, sink.delay_s = 200, 0.5
    threads = [threading.Thread(target=n.flush) for n in (old, new)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(sink.received) == 2  # the failed try, then exactly one delivery
    assert new.pending() == []


def test_apprise_is_loaded_at_the_first_send_not_with_the_notifier(
    sink: Sink, tmp_path: Path
) -> None:
    """A job process builds a notifier at start and notifies at its end: apprise's import
    (~0.4 s) must not come before its first model call."""
    script = f"""
import sys
from pathlib import Path
from opus.notify import AppriseNotifier
notifier = AppriseNotifier([{sink.url!r}], Path({str(tmp_path / "outbox")!r}))
print("after construction", "apprise" in sys.modules)
notifier.notify("failed", "opus: FR-1 failed", "tests failed 3 times")
print("after notify", "apprise" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(notify.__file__).parents[1])}
    command = [sys.executable, "-c", script]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["after construction False", "after notify True"]
    assert [body["title"] for body in sink.received] == ["opus: FR-1 failed"]
