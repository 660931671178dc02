"""Opening the database: one SQLAlchemy engine per registry, set up per dialect.

SQLite gets WAL, a busy timeout, foreign keys and `BEGIN IMMEDIATE` transactions: a
deferred transaction that reads and later writes fails at once with "database is locked"
when another writer got in between, whatever the busy timeout, so every transaction
takes the write lock up front. PostgreSQL needs nothing special.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from opus.errors import StoreConflict, StoreError
from opus.registry.conflicts import CONFLICT_SQLSTATES

BUSY_TIMEOUT_S = 30.0


def normalise_url(url: str) -> URL:
    """Parse a `database.url`; plain `postgresql://` means the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as err:
        raise StoreError(
            f"database.url {url!r} is not a database URL: use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        ) from err
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"database.url {describe(parsed)}: unsupported database "
            f"{parsed.get_backend_name()!r}; use sqlite:///PATH or postgresql+psycopg://..."
        )
    return parsed


def describe(url: URL) -> str:
    """The URL as it may be shown to a person (no password)."""
    return url.render_as_string(hide_password=True)


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: URL) -> Engine:
    """An engine for `url`; SQLite files get their parent directory created."""
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    if is_memory(url):
        # One connection shared by every thread, so that they all see one database.
        engine = create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        if url.database:
            _make_parent(Path(url.database).expanduser())
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
        )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _make_parent(database: Path) -> None:
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create the directory of sqlite database {database}: {err}; "
            "check database.url (or daemon.state_dir)"
        ) from err


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL` on a database another process is creating right now
    can answer "database is locked" at once, without the busy timeout: retry it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Stop pysqlite from issuing its own (deferred) BEGIN; `_sqlite_on_begin` does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _switch_to_wal(cursor)
        # With WAL, NORMAL is durable against process crashes and much faster than FULL.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def translated(url: URL) -> Iterator[None]:
    """Turn driver errors into `StoreError`s that say what to check."""
    try:
        yield
    except exc.DBAPIError as err:
        raise _driver_error(url, err) from err
    except exc.SQLAlchemyError as err:
        raise StoreError(f"database error on {describe(url)}: {err}") from err


def _driver_error(url: URL, err: exc.DBAPIError) -> StoreError:
    sqlstate = getattr(err.orig, "sqlstate", None)
    if sqlstate in CONFLICT_SQLSTATES:
        # psycopg files these under OperationalError, but the server is there and answered.
        return StoreConflict(
            f"a registry transaction on {describe(url)} collided with another one "
            f"({_first_line(err.orig)})"
        )
    if isinstance(err, exc.OperationalError):
        return StoreError(_operational_message(url, err))
    return StoreError(
        f"database error on {describe(url)}: {_first_line(err.orig)}; "
        "check database.url and that the schema belongs to this version of opus"
    )


def _operational_message(url: URL, err: exc.OperationalError) -> str:
    reason = _first_line(err.orig)
    if url.get_backend_name() == "postgresql":
        where = f"{url.host or 'localhost'}:{url.port or 5432}"
        return (
            f"cannot reach postgresql at {where} (database {url.database!r}): {reason}; "
            "is the server running? check database.url"
        )
    if isinstance(err.orig, sqlite3.OperationalError) and "locked" in reason:
        return (
            f"sqlite database {url.database} is locked by another process (waited up to "
            f"{BUSY_TIMEOUT_S:.0f}s); check for a stuck opus process or another program "
            "holding the file"
        )
    return (
        f"cannot use sqlite database {url.database!r}: {reason}; check database.url "
        "and that its directory is writable"
    )


def _first_line(orig: object) -> str:
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
