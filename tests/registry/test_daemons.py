"""Daemon presence records on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from opus.domain import DaemonRecord
from opus.registry import Registry
from opus.testing.clock import FakeClock


def _record(clock: FakeClock, daemon_id: str = "tarn:4242:abc123") -> DaemonRecord:
    host, pid, _ = daemon_id.split(":")
    return DaemonRecord(
        id=daemon_id, host=host, pid=int(pid), role="all", version="0.1.0",
        started_at=clock.now(), beat_at=clock.now(), beat_every_s=20.0,
        info={"breakers": [{"key": "engine:anthropic", "last_error": "529 overloaded"}],
              "waiting": [{"fr": "FR-9", "waiting_on": ["FR-8"]}]},
    )


def test_a_beat_inserts_then_renews_one_record(store: Registry, clock: FakeClock) -> None:
    first = _record(clock)
    store.beat_daemon(first)
    clock.advance(20)
    renewed = dataclasses.replace(first, beat_at=clock.now(), info={"breakers": []},
                                  started_at=clock.now())
    store.beat_daemon(renewed)
    (only,) = store.daemons()
    assert only.beat_at == first.beat_at + timedelta(seconds=20)
    assert only.started_at == first.started_at, "a renewal keeps the start time"
    assert only.info == {"breakers": []}
    assert (only.host, only.pid, only.role, only.version, only.beat_every_s) == (
        "tarn", 4242, "all", "0.1.0", 20.0)


def test_records_are_listed_oldest_first_and_forgotten_one_by_one(
    store: Registry, clock: FakeClock
) -> None:
    store.beat_daemon(_record(clock, "tarn:1:aaaaaa"))
    clock.advance(5)
    store.beat_daemon(_record(clock, "fell:2:bbbbbb"))
    assert [r.id for r in store.daemons()] == ["tarn:1:aaaaaa", "fell:2:bbbbbb"]
    assert store.daemons()[0].info["waiting"] == [{"fr": "FR-9", "waiting_on": ["FR-8"]}]
    store.forget_daemon("tarn:1:aaaaaa")
    store.forget_daemon("no-such-daemon")
    assert [r.id for r in store.daemons()] == ["fell:2:bbbbbb"]
