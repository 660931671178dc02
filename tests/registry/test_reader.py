"""The read-only reader sees exactly what `Registry` stores, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.domain import JobState, Priority
from opus.errors import StoreError
from opus.registry import open_store
from opus.registry.reader import open_reader
from opus.testing.clock import FakeClock
from tests.registry.factory import make_fr

REPO = Path("/srv/repos/api")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_reader_returns_the_registrys_own_records(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (f"sqlite:///{tmp_path / 'state' / 'opus.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    clock = FakeClock()
    store = open_store(url, clock=clock)
    store.enqueue(make_fr("FR-1", priority=Priority.HIGH), REPO)
    store.enqueue(make_fr("FR-2"), REPO)
    running = store.claim("host:1:w", 600)
    assert running is not None
    clock.advance(90)
    store.transition(running.id, JobState.FAILED, holder="host:1:w", error="tests failed\nmore")
    store.enqueue(make_fr("FR-3", priority=Priority.LOW), REPO)
    store.set_flag("paused", "1")
    assert open_reader(url).jobs() == store.jobs()  # while a daemon has it open
    store.close()  # as when the daemon is stopped: the reader must not need it

    reader = open_reader(url)

    reopened = open_store(url, clock=clock)
    assert reader.jobs() == reopened.jobs()
    assert reader.jobs([JobState.QUEUED]) == reopened.jobs([JobState.QUEUED])
    assert [job.fr_id for job in reader.jobs([JobState.FAILED])] == ["FR-1"]
    assert reader.jobs([]) == []
    failed = reader.jobs([JobState.FAILED])[0]
    assert failed.finished_at is not None and failed.finished_at.tzinfo is not None
    assert reader.get_flag("paused") == "1" and reader.get_flag("nothing") is None
    reopened.close()


def test_a_registry_that_does_not_exist_yet_has_no_jobs_and_is_not_created(
    tmp_path: Path,
) -> None:
    database = tmp_path / "state" / "opus.db"
    reader = open_reader(f"sqlite:///{database}")
    assert reader.jobs() == [] and reader.get_flag("paused") is None
    assert not database.parent.exists()
    database.parent.mkdir()
    database.touch()  # an empty file: no tables yet
    assert open_reader(f"sqlite:///{database}").jobs() == []


def test_unsupported_and_unreachable_databases_say_what_to_check() -> None:
    with pytest.raises(StoreError, match="unsupported database"):
        open_reader("mysql://db/opus")
    with pytest.raises(StoreError, match="is the server running"):
        open_reader("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2").jobs()


def test_a_lane_page_holds_its_states_latest_first_and_a_tie_goes_to_the_newer_job(
    shared_url: str,
) -> None:
    clock = FakeClock()
    store = open_store(shared_url, clock=clock)
    ends = [JobState.FAILED, JobState.CANCELLED, JobState.DONE]
    for number in range(24):
        job = store.enqueue(make_fr(f"FR-{number}"), REPO)
        if number % 4:  # one in four ends at the same moment as the job before it
            clock.advance(1)
        store.transition(job.id, JobState.RUNNING)
        if ends[number % 3] is JobState.DONE:
            store.transition(job.id, JobState.AWAITING_REVIEW)
        store.transition(job.id, ends[number % 3])
    reader = open_reader(shared_url)
    failed = (JobState.FAILED, JobState.CANCELLED)
    every = sorted(store.jobs(failed), key=lambda job: (job.updated_at, job.id), reverse=True)
    assert len(every) == 16 and len({job.updated_at for job in every}) < 16

    for offset in range(0, 18, 3):
        for limit in (1, 5, 20):
            expected = every[offset:offset + limit]
            assert reader.latest_jobs(failed, limit=limit, offset=offset) == expected
            assert store.latest_jobs(failed, limit=limit, offset=offset) == expected
    done = store.jobs([JobState.DONE])[::-1]
    assert reader.latest_jobs([JobState.DONE], limit=3, offset=1) == done[1:4]
    assert store.latest_jobs([JobState.DONE], limit=3, offset=1) == done[1:4]
    assert reader.latest_jobs([], limit=5) == store.latest_jobs([], limit=5) == []
    store.close()
