"""The reads the daemon runs every turn use an index, on SQLite and on PostgreSQL, and a
page of a board's ended lane reads its index in order instead of sorting the lane.

The registry is filled the way a long-lived one looks (thousands of finished jobs, a
queue, a few running) and analysed, so each database's planner chooses as it would in
service; a plan that scans or sorts the jobs table makes a loop turn grow with history.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from opus.board.lanes import ENDED_LANES
from opus.domain import JobState, Priority
from opus.registry import Registry, open_store
from opus.registry.reader import CHANGE_SQL, lane_sql
from opus.registry.store import lane_query
from opus.registry.tables import EVENTS, JOBS, STAGE_RUNS
from opus.testing.clock import FakeClock

PRIORITIES = list(Priority)
DONE, QUEUED_JOBS, RUNNING_JOBS = 4000, 300, 3
# How the first DONE jobs ended, in turn: 70 % done, 20 % failed, 10 % cancelled.
ENDED = [JobState.DONE] * 7 + [JobState.FAILED] * 2 + [JobState.CANCELLED]
# Which index each hot read must go through (one of them, where several serve).
EXPECTED = {
    "claim": ("ix_jobs_claim",),
    "claim, a repo excluded": ("ix_jobs_claim",),
    "latest_for_fr": ("ix_jobs_fr_latest",),
    "latest_for_frs": ("ix_jobs_fr_latest",),
    # Covering on SQLite; PostgreSQL's bitmap scan of the two states' ranges costs the
    # same in either index that leads with `state`, and it takes either.
    "queue_summary": ("ix_jobs_claim", "ix_jobs_lane"),
    "changed_since": ("ix_jobs_updated_at",),
    "cost_since": ("ix_stage_runs_finished_at",),
}


def _fill(store: Registry, clock: FakeClock, *, analyse: bool = True) -> None:
    start = clock.now() - timedelta(days=400)
    rows = []
    for n in range(DONE + QUEUED_JOBS + RUNNING_JOBS):
        state = (ENDED[n % len(ENDED)] if n < DONE else
                 JobState.QUEUED if n < DONE + QUEUED_JOBS else JobState.RUNNING)
        at = start + timedelta(hours=n)
        priority = PRIORITIES[n % len(PRIORITIES)]
        rows.append({
            "fr_id": f"FR-{n}", "title": f"Feature {n}", "state": state.value,
            "priority": priority.value, "priority_rank": priority.rank,
            "content_hash": f"{n:064x}", "fr_path": f"/vault/FR-{n}.md",
            "repo": f"/srv/repos/r{n % 7}", "created_at": at, "updated_at": at,
            "worker": "host:1:w" if state is JobState.RUNNING else None,
            "lease_until": clock.now() + timedelta(minutes=5)
            if state is JobState.RUNNING else None,
        })
    runs = [{
        "job_id": n + 1, "stage": "plan", "iteration": 0, "ok": True, "output": "{}",
        "cost_usd": 0.1, "started_at": start + timedelta(hours=n),
        "finished_at": start + timedelta(hours=n, minutes=3),
    } for n in range(DONE)]
    with store._tx() as conn:
        conn.execute(insert(JOBS), rows)
        conn.execute(insert(STAGE_RUNS), runs)
    if analyse:
        with store._tx() as conn:
            conn.execute(text("ANALYZE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    clock = FakeClock()
    url = (f"sqlite:///{tmp_path / 'opus.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    store = open_store(url, clock=clock)
    _fill(store, clock)
    try:
        yield store
    finally:
        store.close()


def test_every_hot_read_uses_its_index_and_never_scans_or_sorts_the_jobs(
    filled: Registry,
) -> None:
    queries = filled.hot_queries()
    assert set(queries) == set(EXPECTED)
    for name, statement in queries.items():
        plan = filled.query_plan(statement)
        print(f"{name}:", *plan, sep="\n    ")
        joined = "\n".join(plan)
        assert any(index in joined for index in EXPECTED[name]), (name, plan)
        # SQLite: "SCAN jobs" is a full table scan; PostgreSQL: "Seq Scan on jobs".
        assert not any(line.startswith("SCAN jobs") or line.startswith("SCAN pick")
                       for line in plan), (name, plan)
        assert "Seq Scan on jobs" not in joined and "Seq Scan on stage_runs" not in joined, (
            name, plan)


def test_the_claim_reads_one_entry_per_state_instead_of_sorting_the_queue(
    filled: Registry,
) -> None:
    plan = filled.query_plan(filled.hot_queries()["claim"])
    print(*plan, sep="\n")
    joined = "\n".join(plan)
    # Whatever is sorted is the two candidates (one per leg), never the queue itself.
    assert "MULTI-INDEX OR" not in joined, plan
    assert all("leg_" in line for line in plan if "Sort Key:" in line), plan
    job = filled.claim("host:2:w", 60)
    # The oldest critical queued job; DONE is a multiple of 4, so it is job DONE + 1.
    assert job is not None and job.priority is Priority.CRITICAL
    assert job.fr_id == f"FR-{DONE}"



# PostgreSQL's full sort node ("->  Sort  (cost=…"). An Incremental Sort over a presorted
# key orders only rows that tie on it; a Merge Append's "Sort Key:" is not a sort.
PG_SORT = re.compile(r"(?<!Incremental )\bSort\s+\(cost=")


@pytest.fixture(params=["sqlite", "sqlite, never analysed",
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def lanes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A filled registry; SQLite also as opus leaves it, never analysed (opus runs no
    ANALYZE), PostgreSQL vacuumed and analysed as its autovacuum leaves a table."""
    clock = FakeClock()
    postgres = request.param == "postgres"
    url = (request.getfixturevalue("pg_schema_url") if postgres
           else f"sqlite:///{tmp_path / 'opus.db'}")
    store = open_store(url, clock=clock)
    _fill(store, clock, analyse=request.param == "sqlite")
    if postgres:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
        engine.dispose()
    try:
        yield store
    finally:
        store.close()


def test_a_page_of_a_lane_reads_its_keys_from_an_index_in_order_and_never_sorts_the_lane(
    lanes: Registry,
) -> None:
    postgres = repr(lanes).startswith("Registry(postgresql")
    for lane, states in ENDED_LANES.items():
        for offset in (0, 1000):
            plans = {
                "registry": lanes.query_plan(
                    lane_query(states, limit=10, offset=offset, limit_legs=postgres)),
                "reader": lanes.query_plan(*lane_sql(
                    states, "%s" if postgres else "?", limit=10, offset=offset,
                    limit_legs=postgres)),
            }
            for who, plan in plans.items():
                print(f"{lane} at {offset} ({who}):", *plan, sep="\n    ")
                joined = "\n".join(plan)
                if postgres:
                    # Each state's keys walked backwards in ix_jobs_lane alone (merged,
                    # for several), then the page's rows by their ids.
                    assert joined.count("Index Only Scan Backward using ix_jobs_lane") == len(
                        states), plan
                    assert "Index Scan using jobs_pkey" in joined, plan
                    assert "Seq Scan" not in joined and "Bitmap" not in joined, plan
                    assert not PG_SORT.search(joined), plan
                    continue
                assert [line for line in plan if line.startswith(("SEARCH", "SCAN"))] == [
                    *["SEARCH jobs USING COVERING INDEX ix_jobs_lane (state=?)"] * len(states),
                    "SCAN page", "SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)"], plan
                # The one sort is of the page's own `limit` rows, by the outer query.
                assert [line for line in plan if "TEMP B-TREE" in line] == [
                    "USE TEMP B-TREE FOR ORDER BY"] == plan[-1:], (lane, offset, who, plan)


def test_the_web_boards_change_mark_reads_one_end_of_an_index_per_table(
    filled: Registry,
) -> None:
    """Read every 0.3 s while a browser watches: it must not count the registry's jobs."""
    with filled._tx() as conn:  # a log as long as the jobs' history
        conn.execute(insert(EVENTS), [{"job_id": n % 4000 + 1, "at": FakeClock().now(),
                                       "kind": "stage", "message": "plan ok"}
                                      for n in range(4000)])
        conn.execute(text("ANALYZE"))
    plan = filled.query_plan(CHANGE_SQL)
    print(*plan, sep="\n")
    big = ("jobs", "stage_runs", "events")
    reads = [line.strip() for line in plan
             if any(f" {table}" in line for table in big) and ("SCAN" in line.upper()
                                                                or "SEARCH" in line)]
    assert reads, plan
    if repr(filled).startswith("Registry(postgresql"):
        # Each a Limit 1 over an index read backwards: max(), never an aggregate of all.
        assert all("Backward" in line for line in reads), plan
    else:
        assert not [line for line in reads if line.startswith("SCAN")], plan
