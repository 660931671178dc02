"""A real PostgreSQL deadlock is a conflict the registry (and its reader) retries, not an
outage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opus.domain import Stage, StageRun
from opus.errors import StoreConflict
from opus.registry import Registry, open_store
from opus.registry.engine import make_engine, normalise_url, translated
from opus.registry.reader import open_reader
from tests.registry.factory import PG_CONNINFO, make_fr

pytestmark = pytest.mark.postgres

WAIT_S = 30.0


@pytest.fixture
def pg_store(pg_schema_url: str) -> Iterator[tuple[Registry, str]]:
    # opus's connections look for a deadlock 2 s into a lock wait (the test's own
    # connection only after 60 s), so PostgreSQL always aborts opus's transaction.
    url = f"{pg_schema_url}%20-cdeadlock_timeout%3D2s"
    store = open_store(url)
    try:
        yield store, url
    finally:
        store.close()


def _other(url: str) -> object:
    """A second client in the same schema, slow to give up in a deadlock."""
    import psycopg

    schema = url.split("search_path%3D")[1].split("%20", maxsplit=1)[0]
    conn = psycopg.connect(PG_CONNINFO, options=f"-csearch_path={schema}")
    conn.execute("SET deadlock_timeout = '60s'")
    return conn


def _wait_for_lock_wait(other_pid: int) -> None:
    """Until some other backend waits for a lock (bounded)."""
    import psycopg

    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(PG_CONNINFO, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> %s", [other_pid]
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the registry's transaction never waited for the lock")


def _in_a_deadlock(url: str, job_id: int, victim: Callable[[], object]) -> list[BaseException]:
    """Run `victim` (a transaction that key-share locks the job row, then updates it)
    while another client share-locks the row and then asks to lock it for update: each
    waits for the other. Returns what `victim` raised."""
    import psycopg

    other = _other(url)
    assert isinstance(other, psycopg.Connection)
    other.execute("SELECT id FROM jobs WHERE id = %s FOR SHARE", [job_id])
    raised: list[BaseException] = []

    def run() -> None:
        try:
            victim()
        except BaseException as exc:  # reported to the test
            raised.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait_for_lock_wait(other.info.backend_pid)
        other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", [job_id])
        other.commit()
    finally:
        worker.join(WAIT_S)
        other.close()
    assert not worker.is_alive()
    return raised


def test_a_deadlocked_checkpoint_is_retried_and_recorded_once(
    pg_store: tuple[Registry, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, url = pg_store
    job = store.enqueue(make_fr(), Path("/srv/repo"))
    caplog.set_level(logging.INFO, logger="opus.registry")
    run = StageRun(job.id, Stage.PLAN, 0, True, {}, cost_usd=0.25)

    # A checkpoint inserts the stage run (its foreign key key-share locks the job row),
    # then adds its cost to the job.
    assert _in_a_deadlock(url, job.id, lambda: store.record_stage(run)) == []

    retries = [r.getMessage() for r in caplog.records if "running it again" in r.getMessage()]
    assert retries and "deadlock detected" in retries[0], retries
    assert "cannot reach" not in retries[0]
    assert [run.stage for run in store.stage_runs(job.id)] == [Stage.PLAN]
    assert store.get(job.id).cost_usd == pytest.approx(0.25)


def test_a_deadlock_is_reported_as_a_conflict_not_as_an_unreachable_server(
    pg_store: tuple[Registry, str],
) -> None:
    store, url = pg_store
    job = store.enqueue(make_fr(), Path("/srv/repo"))
    parsed = normalise_url(url)
    engine = make_engine(parsed)

    def one_raw_transaction() -> None:  # no retry around it
        with translated(parsed), engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT id FROM jobs WHERE id = {job.id} FOR KEY SHARE")
            conn.exec_driver_sql(f"UPDATE jobs SET cost_usd = 1 WHERE id = {job.id}")

    try:
        caught = _in_a_deadlock(url, job.id, one_raw_transaction)
    finally:
        engine.dispose()

    assert len(caught) == 1 and isinstance(caught[0], StoreConflict), caught
    message = str(caught[0])
    assert "deadlock detected" in message and "cannot reach" not in message
    assert StoreConflict.retryable


def _wait_for_a_wait_on(schema_url: str, table: str) -> None:
    """Until a backend waits for a lock on `table` of the test's own schema (bounded)."""
    import psycopg

    schema = schema_url.split("search_path%3D")[1].split("%20", maxsplit=1)[0]
    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(PG_CONNINFO, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE NOT l.granted AND n.nspname = %s AND c.relname = %s",
                [schema, table],
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"nobody ever waited for a lock on {table}")


@pytest.mark.parametrize("keep_open", [False, True], ids=["connect-per-read", "kept-connection"])
def test_a_read_caught_in_a_deadlock_runs_again_and_answers(
    pg_store: tuple[Registry, str], keep_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    store, url = pg_store
    store.enqueue(make_fr(), Path("/srv/repo"))
    store.add_event(None, "started", "a daemon")
    reader = open_reader(url, keep_open=keep_open)
    before = reader.change_mark()
    caplog.set_level(logging.INFO, logger="opus.registry")

    # The reader's one statement share-locks jobs, then stage_runs, then events; the other
    # client holds events exclusively, and once the read waits for it, asks for jobs.
    other = _other(url)
    assert isinstance(other, psycopg.Connection)
    other.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    answers: list[object] = []

    def read() -> None:
        try:
            answers.append(reader.change_mark())
        except BaseException as exc:  # reported to the test
            answers.append(exc)

    worker = threading.Thread(target=read)
    worker.start()
    try:
        _wait_for_a_wait_on(url, "events")
        other.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")  # the server breaks the
        other.commit()  # deadlock on the reader's side (2 s against 60 s)
    finally:
        worker.join(WAIT_S)
        other.close()
        reader.close()
    assert not worker.is_alive()

    assert answers == [before], answers
    retries = [r.getMessage() for r in caplog.records if "running it again" in r.getMessage()]
    assert retries and "deadlock detected" in retries[0], retries
    assert "(database 'test')" in retries[0]
