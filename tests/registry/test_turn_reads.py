"""The reads a daemon turn makes in one query each, and indexes added to older databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect, text

from opus.domain import JobState, Priority, QueueSummary
from opus.registry import Registry, open_store
from opus.testing.clock import FakeClock
from tests.registry.factory import make_fr

REPO = Path("/srv/repos/api")
# The jobs indexes added since the first release, which an older database lacks.
ADDED_INDEXES = {"ix_jobs_fr_latest", "ix_jobs_claim", "ix_jobs_lane"}


def test_latest_for_frs_gives_each_frs_newest_job_and_leaves_out_unknown_ones(
    store: Registry,
) -> None:
    first = store.enqueue(make_fr("FR-1", "v1"), REPO)
    store.transition(first.id, JobState.CANCELLED)
    second = store.enqueue(make_fr("FR-1", "v2"), REPO)  # a new attempt after cancel
    other = store.enqueue(make_fr("FR-2"), REPO)

    latest = store.latest_for_frs(["FR-1", "FR-2", "FR-9", "FR-1"])

    assert dict(latest) == {"FR-1": second, "FR-2": other}
    assert store.latest_for_frs([]) == {}


def test_latest_for_frs_answers_a_whole_vaults_ids_in_one_statement(
    store: Registry,
) -> None:
    ids = [f"FR-{n}" for n in range(1203)]
    for fr_id in [*ids[::100], "FR-elsewhere"]:  # one FR whose note is not asked about
        store.enqueue(make_fr(fr_id), REPO)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        latest = store.latest_for_frs(ids)
    finally:
        event.remove(store._engine, "before_cursor_execute", count)

    assert sorted(latest) == sorted(ids[::100])
    assert all(job.fr_id == fr_id for fr_id, job in latest.items())
    assert len([sql for sql in statements if "jobs" in sql]) == 1, statements


def test_queue_summary_counts_the_queue_and_names_its_most_urgent_priority(
    store: Registry,
) -> None:
    assert store.queue_summary() == QueueSummary(0, 0, None)
    store.enqueue(make_fr("FR-1", priority=Priority.LOW), REPO)
    store.enqueue(make_fr("FR-2", priority=Priority.HIGH), REPO)
    store.enqueue(make_fr("FR-3", priority=Priority.CRITICAL), REPO)
    done = store.enqueue(make_fr("FR-4", priority=Priority.CRITICAL), REPO)
    store.transition(done.id, JobState.CANCELLED)

    assert store.queue_summary() == QueueSummary(3, 0, Priority.CRITICAL)
    claimed = store.claim("host:1:w", 60)
    assert claimed is not None and claimed.fr_id == "FR-3"
    assert store.queue_summary() == QueueSummary(2, 1, Priority.HIGH)


def _index_names(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {str(ix["name"]) for ix in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_opening_an_older_database_adds_the_missing_indexes_and_keeps_its_jobs(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    url = (f"sqlite:///{tmp_path / 'opus.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    store = open_store(url, clock=FakeClock())
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.close()
    # As a database made before these indexes existed has it.
    engine = create_engine(url)
    with engine.begin() as conn:
        for name in ADDED_INDEXES:
            conn.execute(text(f"DROP INDEX {name}"))
    engine.dispose()
    assert not ADDED_INDEXES & _index_names(url, "jobs")

    reopened = open_store(url, clock=FakeClock())
    try:
        assert _index_names(url, "jobs") >= ADDED_INDEXES
        assert reopened.get(job.id) == job
        assert reopened.latest_for_frs(["FR-1"]) == {"FR-1": job}
        assert reopened.latest_jobs([JobState.QUEUED], limit=10) == [job]
    finally:
        reopened.close()
