"""Registry conflicts and the daemon's breaker, on the real PostgreSQL.

A conflict the registry's retries got past is invisible to the daemon; one that outlived
every retry counts against the database's breaker and says which database to look at.
The server aborts the checkpoint insert with SQLSTATE 40001 from a trigger, so the
conflict is real (the driver, the registry and the daemon see what a serialization
failure looks like) and lasts exactly as long as the test wants.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from opus.daemon.breaker import database_key
from opus.daemon.loop import Daemon
from opus.daemon.runtime import Runtime
from opus.domain import JobState, Role, Stage
from opus.testing.engine import ScriptedEngine
from opus.testing.notifier import RecordingNotifier
from tests.e2e_daemon.one_note import one_note_runtime
from tests.registry.factory import PG_CONNINFO, private_pg_url

pytestmark = pytest.mark.postgres

REFUSE = """
CREATE SEQUENCE refusals;
CREATE FUNCTION refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('refusals') <= {times} THEN
    RAISE EXCEPTION 'could not serialize access due to read/write dependencies among transactions'
      USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON {table}
  FOR EACH ROW {when} EXECUTE FUNCTION refuse_checkpoint();
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_pg_url() as url:
        yield url


def _refuse_checkpoints(
    url: str, times: int, *, table: str = "stage_runs", when: str = ""
) -> None:
    """From now on the server aborts the first `times` inserts into `table` (with
    `when`: those it matches) as serialization failures (40001)."""
    import psycopg

    schema = url.split("search_path%3D")[1].split("%20", maxsplit=1)[0]
    sql = REFUSE.replace("{times}", str(times)).replace("{table}", table)
    with psycopg.connect(PG_CONNINFO, options=f"-csearch_path={schema}", autocommit=True) as conn:
        conn.execute(sql.replace("{when}", when).encode())


class Refused(NamedTuple):
    """A `--once` daemon over `FR-1` on a registry that refuses writes, and its parts."""

    engine: ScriptedEngine
    runtime: Runtime
    notifier: RecordingNotifier
    daemon: Daemon


def _refusing_daemon(
    tmp_path: Path, pg_url: str, *, breaker_failures: int, times: int,
    table: str = "stage_runs", when: str = "",
) -> Refused:
    """The demo engine on one planned note, the server refusing writes as
    `_refuse_checkpoints(pg_url, times, table=table, when=when)` makes it."""
    engine = ScriptedEngine.demo()
    runtime, notifier = one_note_runtime(
        tmp_path, engine, breaker_failures=breaker_failures, database_url=pg_url)
    _refuse_checkpoints(pg_url, times, table=table, when=when)
    return Refused(engine, runtime, notifier, Daemon(runtime, once=True, environ={}))


def _planner_runs(engine: ScriptedEngine) -> int:
    return sum(1 for task in engine.tasks if task.role is Role.PLANNER)


def test_a_conflict_that_outlives_every_retry_opens_the_database_breaker(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine, runtime, notifier, daemon = _refusing_daemon(
        tmp_path, pg_url, breaker_failures=2, times=1_000_000)
    caplog.set_level(logging.INFO)

    assert daemon.run() == 1, "--once leaves the job waiting behind the open breaker"

    key = database_key(pg_url)
    assert key == "database:postgresql 127.0.0.1:5432/test"
    assert daemon.breaker.state(key) == "open"
    assert _planner_runs(engine) == 2, "two conflicts open it; no third claim is made"
    assert notifier.kinds().count("breaker") == 1
    store = runtime.ctx.store
    job = store.latest_for_fr("FR-1")
    assert job is not None and job.state is JobState.QUEUED, "the job waits, it is not failed"
    assert "infra_failures" not in job.spec, "not the job's fault"
    released = [e.message for e in store.events(job.id) if e.kind == "released"]
    assert len(released) == 2
    assert released[0].startswith(
        "the registry database (postgresql 127.0.0.1:5432/test) keeps aborting opus's "
        "transactions: "
    )
    assert "could not serialize access" in released[0]
    assert "collided 5 times in a row" in released[0]
    assert "pg_stat_activity" in released[0] and "default_transaction_isolation" in released[0]
    said = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert f"{key} is open after repeated conflicts" in said
    assert "cannot reach" not in said


def test_a_conflict_a_retry_got_past_counts_for_nothing(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # One counted failure would open this breaker at once.
    engine, runtime, notifier, daemon = _refusing_daemon(
        tmp_path, pg_url, breaker_failures=1, times=2)
    caplog.set_level(logging.INFO, logger="opus.registry")

    daemon.run()

    retried = [r.getMessage() for r in caplog.records if "running it again" in r.getMessage()]
    assert len(retried) == 2 and "could not serialize access" in retried[0], retried
    assert daemon.breaker.open_circuits() == []
    assert "breaker" not in notifier.kinds()
    store = runtime.ctx.store
    job = store.latest_for_fr("FR-1")
    assert job is not None and job.state is not JobState.QUEUED
    assert [run.stage for run in store.stage_runs(job.id) if run.ok][:1] == [Stage.PLAN]
    assert _planner_runs(engine) == 1


def test_a_conflict_in_the_loops_own_turn_counts_too(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The loop records each claim as an event right after making it.
    engine, runtime, notifier, daemon = _refusing_daemon(
        tmp_path, pg_url, breaker_failures=1, times=1_000_000, table="events",
        when="WHEN (NEW.kind = 'claimed')")
    caplog.set_level(logging.INFO)

    assert daemon.run() == 1

    key = database_key(pg_url)
    assert daemon.breaker.state(key) == "open"
    assert notifier.kinds().count("breaker") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("the registry database (postgresql 127.0.0.1:5432/test) keeps "
                            "aborting opus's transactions: ") for m in errors), errors
    assert _planner_runs(engine) == 0, "no job started behind the failed turn"
    job = runtime.ctx.store.latest_for_fr("FR-1")
    assert job is not None and job.state is JobState.QUEUED, "handed back, not held"
