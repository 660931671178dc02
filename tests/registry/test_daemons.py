"""Daemon presence records on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opus.domain import DaemonRecord, Stage, StageRun
from opus.registry import Registry, open_store
from opus.registry.reader import open_reader
from opus.testing.clock import FakeClock
from tests.registry.factory import make_fr


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


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_reader_sees_the_daemons_and_the_spend_the_registry_stores(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (f"sqlite:///{tmp_path / 'state' / 'opus.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    clock = FakeClock(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    store = open_store(url, clock=clock)
    store.beat_daemon(_record(clock))
    job = store.enqueue(make_fr("FR-1"), Path("/srv/repos/api"))
    for cost, at in ((1.25, clock.now()), (2.5, clock.now() + timedelta(seconds=1)),
                     (4.0, clock.now() + timedelta(hours=2))):
        store.record_stage(StageRun(job_id=job.id, stage=Stage.CODE, iteration=1, ok=False,
                                    output={}, cost_usd=cost, finished_at=at))
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    reader = open_reader(url)
    assert reader.daemons() == store.daemons()
    assert reader.daemons()[0].beat_at.tzinfo is not None
    for since in (midnight, midnight - timedelta(seconds=1), midnight + timedelta(hours=5)):
        assert reader.cost_since(since) == pytest.approx(store.cost_since(since)), since
    assert reader.cost_since(midnight) == pytest.approx(6.5)
    store.close()


def test_a_reader_of_a_database_not_made_yet_sees_no_daemons_and_no_spend(
    tmp_path: Path,
) -> None:
    reader = open_reader(f"sqlite:///{tmp_path / 'none' / 'opus.db'}")
    assert reader.daemons() == [] and reader.cost_since(datetime.now(UTC)) == 0.0
    assert not (tmp_path / "none").exists()
