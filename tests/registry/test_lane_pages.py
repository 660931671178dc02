"""A board's lane pages and counts are exactly what a plain query over the lane gives,
on SQLite and PostgreSQL, through `Registry` and through the driver-only reader.

The registry is filled as a long-lived one is: ended jobs whose last change is not in
id order, many of them ending in the same second (so the order's tie-break on id is
exercised), a few open jobs, and lanes of very different sizes. The reference is the
straightforward statement, every job of the lane sorted by (updated_at, id), cut in
Python.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, insert, select, text

from opus.board.lanes import ENDED_LANES, Lane
from opus.domain import Job, JobState
from opus.registry import Registry, open_store
from opus.registry.reader import open_reader
from opus.registry.records import job_from_row
from opus.registry.tables import JOBS
from opus.seams import JobReader
from opus.testing.clock import FakeClock

JOBS_FILLED = 2400
OPEN_STATES = [JobState.QUEUED, JobState.RUNNING, JobState.WAITING_INPUT,
               JobState.AWAITING_REVIEW]
ENDED_STATES = [JobState.DONE] * 15 + [JobState.FAILED] * 3 + [JobState.CANCELLED] * 2
LANES = [*ENDED_LANES.values(), (JobState.CANCELLED,), (JobState.FAILED,),
         (JobState.CANCELLED, JobState.DONE, JobState.FAILED), ()]


def _fill(url: str, clock: FakeClock) -> None:
    draw = random.Random(7)
    start = clock.now() - timedelta(days=365)
    rows = []
    for number in range(1, JOBS_FILLED + 1):
        created = start + timedelta(minutes=20 * number)
        ended = number <= JOBS_FILLED - 40
        state = draw.choice(ENDED_STATES if ended else OPEN_STATES)
        # Some days late: a lane's order by change is not the ids' order; and on the
        # hour, so jobs of a lane share moments.
        late = created + timedelta(hours=draw.choice([0, 0, 1, 5, 24 * 3]))
        updated = late.replace(minute=0, second=0, microsecond=0)
        rows.append({
            "id": number, "fr_id": f"FR-{number}", "title": f"Feature {number}",
            "state": state.value, "priority": "medium", "priority_rank": 2,
            "content_hash": f"{number:064x}", "fr_path": f"/vault/FR-{number}.md",
            "repo": "/srv/repos/api", "created_at": created, "updated_at": updated,
            "finished_at": updated if ended else None,
        })
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(JOBS), rows)
    if url.startswith("postgresql"):  # as autovacuum leaves it: the plans the bench saw
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
    engine.dispose()


@pytest.fixture
def filled(shared_url: str) -> Iterator[tuple[Registry, JobReader, str]]:
    clock = FakeClock()
    store = open_store(shared_url, clock=clock)
    _fill(shared_url, clock)
    reader = open_reader(shared_url, keep_open=True)
    try:
        yield store, reader, shared_url
    finally:
        reader.close()
        store.close()


def _reference(url: str, states: Sequence[JobState]) -> list[Job]:
    """Every job of the lane, latest change first, a tie to the newer job: the plain way."""
    query = (select(JOBS).where(JOBS.c.state.in_([state.value for state in states]))
             .order_by(JOBS.c.updated_at.desc(), JOBS.c.id.desc()))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [job_from_row(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()


def test_every_page_and_count_of_a_lane_is_the_plain_querys(
    filled: tuple[Registry, JobReader, str],
) -> None:
    store, reader, url = filled
    for states in LANES:
        every = _reference(url, states)
        if states:  # the fill is what the test means: ties and a lane not in id order
            assert len({job.updated_at for job in every}) < len(every), states
            assert [job.id for job in every] != sorted((job.id for job in every),
                                                       reverse=True), states
        assert reader.count_jobs(states) == store.count_jobs(states) == len(every)
        ends = {0, 1, 9, 10, 11, len(every) // 2, len(every) - 10, len(every) - 1,
                len(every), len(every) + 5}
        for offset in sorted(end for end in ends if end >= 0):
            for limit in (1, 10) if offset not in (0, len(every) // 2) else (1, 10, 1000):
                expected = every[offset:offset + limit]
                assert store.latest_jobs(states, limit=limit, offset=offset) == expected, (
                    states, offset, limit)
                assert reader.latest_jobs(states, limit=limit, offset=offset) == expected, (
                    states, offset, limit)
    # Paging a lane ten at a time gives each of its jobs once, in order.
    failed = ENDED_LANES[Lane.FAILED]
    pages = [job for offset in range(0, reader.count_jobs(failed), 10)
             for job in reader.latest_jobs(failed, limit=10, offset=offset)]
    assert pages == _reference(url, failed)
