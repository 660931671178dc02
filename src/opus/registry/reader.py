"""A read-only view of the registry for commands that only look (`opus status`).

It speaks to the database with the driver alone (sqlite3, or psycopg for PostgreSQL),
not through SQLAlchemy, whose import is most of what such a command would otherwise
cost (see designs/lean.md). It never creates anything: a registry that does not exist
yet simply has no jobs. Rows become the same frozen records `Registry` returns.

A PostgreSQL read the server aborts for a conflict (a deadlock with a transaction that
locks the tables, or a serialization failure) runs again, bounded, exactly as the
registry's writes do (`registry/conflicts.py`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from opus.domain import DaemonRecord, Event, Job, JobState, StageRun
from opus.errors import StoreConflict, StoreError
from opus.registry.conflicts import CONFLICT_SQLSTATES, retry_conflicts
from opus.registry.records import daemon_from_row, event_from_row, job_from_row, stage_run_from_row
from opus.seams import JobReader

TIME_COLUMNS = ("created_at", "updated_at", "lease_until", "started_at", "finished_at")
DAEMON_TIME_COLUMNS = ("started_at", "beat_at")
DAEMONS_SQL = "SELECT * FROM daemons ORDER BY started_at, id"
COST_SQL = "SELECT COALESCE(SUM(cost_usd), 0) AS total FROM stage_runs WHERE finished_at >= {}"
RUN_TIME_COLUMNS = ("started_at", "finished_at")
JOB_SQL = "SELECT * FROM jobs WHERE id = {}"
RUNS_SQL = "SELECT * FROM stage_runs {} ORDER BY id"
EVENTS_SQL = (
    "SELECT * FROM (SELECT * FROM events WHERE id > {mark} {where} ORDER BY id DESC LIMIT {mark})"
    " AS latest ORDER BY id"
)
CHANGE_SQL = (
    "SELECT (SELECT MAX(id) FROM jobs) AS jobs, (SELECT MAX(updated_at) FROM jobs) AS updated,"
    " (SELECT MAX(id) FROM stage_runs) AS runs, (SELECT MAX(id) FROM events) AS events,"
    " (SELECT COUNT(*) FROM flags) AS flags, (SELECT MAX(value) FROM flags) AS flag,"
    " (SELECT COUNT(*) FROM daemons) AS daemons, (SELECT MAX(beat_at) FROM daemons) AS beat"
)
"""One row that differs whenever a job, checkpoint, event, flag or daemon record changed.

Each part of `jobs`, `stage_runs` and `events` is one end of an index (a new job, the
latest change, the newest checkpoint and event): the web board reads it every 0.3 s,
which a count of every job made grow with the registry's history. Jobs are never
deleted, so a new job is a new highest id.
"""


def open_reader(url: str, *, keep_open: bool = False) -> JobReader:
    """A reader for `database.url` (`sqlite:///PATH` or `postgresql[+psycopg]://…`).

    `keep_open`: a long-lived reader (the web board) keeps one PostgreSQL connection
    instead of connecting per query; a command's reader connects and closes each time.
    """
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        return SQLiteReader(_sqlite_path(url))
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        return PostgresReader("postgresql:" + url.split(":", 1)[1], keep_open=keep_open)
    raise StoreError(
        f"database.url {scheme}:…: unsupported database; use sqlite:///PATH or "
        "postgresql+psycopg://..."
    )


def _sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL; None for an in-memory database."""
    path = unquote(urlsplit(url).path)
    # sqlite:///relative.db → "/relative.db"; sqlite:////abs.db → "//abs.db".
    path = path[1:] if path.startswith("/") else path
    return Path(path) if path and path != ":memory:" else None


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _aware(row: Mapping[str, Any], names: Sequence[str] = TIME_COLUMNS) -> dict[str, Any]:
    values = dict(row)
    for name in names:
        value = values.get(name)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # stored as naive UTC (tables.UTCDateTime)
        values[name] = value
    return values


def _naive_utc(moment: datetime) -> datetime:
    """How the registry stores a time (tables.UTCDateTime): naive, in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _jobs_sql(states: Iterable[JobState] | None, placeholder: str) -> tuple[str, list[str]]:
    if states is None:
        return "SELECT * FROM jobs ORDER BY id", []
    values = [JobState(state).value for state in states]
    marks = ", ".join([placeholder] * len(values)) or "NULL"
    return f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", values


def lane_sql(
    states: Iterable[JobState], mark: str, *, limit: int, offset: int, limit_legs: bool
) -> tuple[str, list[Any]]:
    """`store.lane_query` as driver SQL (`mark`: the driver's placeholder; `limit_legs`
    on PostgreSQL), and its parameters."""
    values: list[Any] = [JobState(state).value for state in states]
    order = "ORDER BY updated_at DESC, id DESC"
    if not values:
        return "SELECT * FROM jobs WHERE 1 = 0", []
    leg = f"SELECT id, updated_at FROM jobs WHERE state = {mark}"
    if len(values) == 1:
        keys, params = leg, [*values, limit, offset]
    elif limit_legs:
        keys = " UNION ALL ".join(
            f"SELECT id, updated_at FROM ({leg} {order} LIMIT {mark}) AS leg_{number}"
            for number in range(len(values)))
        params = [*(v for value in values for v in (value, offset + limit)), limit, offset]
    else:
        keys, params = " UNION ALL ".join([leg] * len(values)), [*values, limit, offset]
    page = f"{keys} {order} LIMIT {mark} OFFSET {mark}"
    return (f"SELECT jobs.* FROM jobs JOIN ({page}) AS page ON jobs.id = page.id"
            " ORDER BY page.updated_at DESC, page.id DESC", params)


def _count_sql(states: Iterable[JobState], mark: str) -> tuple[str, list[Any]]:
    where, values = _in_states(states, mark)
    return f"SELECT COUNT(*) AS n FROM jobs WHERE {where}", values


def _in_states(states: Iterable[JobState], mark: str) -> tuple[str, list[Any]]:
    values: list[Any] = [JobState(state).value for state in states]
    return f"state IN ({', '.join([mark] * len(values)) or 'NULL'})", values


class SQLiteReader:
    """Implements `JobReader` on a SQLite file, opened read-only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"SQLiteReader({self.path})"

    def close(self) -> None:
        """Nothing to close: each read opens and closes its own connection."""

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection | None]:
        if self.path is None or not self.path.exists():
            yield None  # nothing was ever stored there
            return
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as err:
            raise StoreError(f"cannot read sqlite database {self.path}: {err}") from err
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self._connect() as conn:
            if conn is None:
                return []
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return []  # created, but no opus process has opened it yet
                raise StoreError(f"cannot read sqlite database {self.path}: {err}") from err

    def jobs(self, states: Iterable[JobState] | None = None) -> Sequence[Job]:
        sql, params = _jobs_sql(states, "?")
        return [job_from_row(_aware(dict(row))) for row in self._rows(sql, params)]

    def latest_jobs(
        self, states: Iterable[JobState], *, limit: int, offset: int = 0
    ) -> Sequence[Job]:
        rows = self._rows(*lane_sql(states, "?", limit=limit, offset=offset, limit_legs=False))
        return [job_from_row(_aware(dict(row))) for row in rows]

    def count_jobs(self, states: Iterable[JobState]) -> int:
        rows = self._rows(*_count_sql(states, "?"))
        return int(rows[0][0]) if rows else 0

    def get_flag(self, name: str) -> str | None:
        rows = self._rows("SELECT value FROM flags WHERE name = ?", [name])
        return str(rows[0][0]) if rows else None

    def daemons(self) -> Sequence[DaemonRecord]:
        rows = self._rows(DAEMONS_SQL, [])
        return [daemon_from_row(_aware(dict(row), DAEMON_TIME_COLUMNS)) for row in rows]

    def cost_since(self, since: datetime) -> float:
        # SQLAlchemy stores SQLite datetimes as this text, which sorts like the time.
        bound = _naive_utc(since).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows = self._rows(COST_SQL.format("?"), [bound])
        return float(rows[0][0]) if rows else 0.0

    def job(self, job_id: int) -> Job | None:
        rows = self._rows(JOB_SQL.format("?"), [job_id])
        return job_from_row(_aware(dict(rows[0]))) if rows else None

    def stage_runs(self, job_id: int | None = None) -> Sequence[StageRun]:
        where, params = ("WHERE job_id = ?", [job_id]) if job_id is not None else ("", [])
        rows = self._rows(RUNS_SQL.format(where), params)
        return [stage_run_from_row(_aware(dict(row), RUN_TIME_COLUMNS)) for row in rows]

    def events(self, job_id: int | None = None, after_id: int = 0,
               limit: int = 200) -> Sequence[Event]:
        where, params = ("AND job_id = ?", [job_id]) if job_id is not None else ("", [])
        sql = EVENTS_SQL.format(mark="?", where=where)
        rows = self._rows(sql, [after_id, *params, limit])
        return [event_from_row(_aware(dict(row), ("at",))) for row in rows]

    def change_mark(self) -> tuple[Any, ...]:
        rows = self._rows(CHANGE_SQL, [])
        return tuple(rows[0]) if rows else ()


class PostgresReader:
    """Implements `JobReader` on PostgreSQL through psycopg."""

    def __init__(self, conninfo: str, *, keep_open: bool = False) -> None:
        self._conninfo = conninfo
        parts = urlsplit(conninfo)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        self._database = parts.path.lstrip("/")
        self._keep_open = keep_open
        self._lock = threading.Lock()
        self._conn: Any = None

    def __repr__(self) -> str:
        return "PostgresReader()"  # the URL may hold a password

    def close(self) -> None:
        """Close the kept connection, if any."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        if not self._keep_open:
            with psycopg.connect(self._conninfo, row_factory=dict_row) as conn:
                return conn.execute(sql, params).fetchall()
        with self._lock:  # one kept connection, autocommit: each read sees the latest rows
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, row_factory=dict_row,
                                             autocommit=True)
            try:
                rows: list[dict[str, Any]] = self._conn.execute(sql, params).fetchall()
                return rows
            except psycopg.OperationalError as err:
                if err.sqlstate not in CONFLICT_SQLSTATES:
                    self._conn.close()  # gone (server restart): the next read connects anew
                raise

    @retry_conflicts
    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        import psycopg

        try:
            return self._query(sql, params)
        except psycopg.errors.UndefinedTable:
            return []
        except psycopg.Error as err:
            if err.sqlstate in CONFLICT_SQLSTATES:
                raise StoreConflict(
                    f"a read of postgresql at {self._where} (database {self._database!r}) "
                    f"collided with another transaction ({_first_line(err)})"
                ) from err
            raise self._error(err) from err

    def _error(self, err: Exception) -> StoreError:
        import psycopg

        if isinstance(err, psycopg.OperationalError):
            return StoreError(
                f"cannot reach postgresql at {self._where} (database {self._database!r}): "
                f"{_first_line(err)}; is the server running? check database.url"
            )
        return StoreError(
            f"database error on postgresql at {self._where}: {_first_line(err)}; check "
            "database.url and that the schema belongs to this version of opus"
        )

    def jobs(self, states: Iterable[JobState] | None = None) -> Sequence[Job]:
        sql, params = _jobs_sql(states, "%s")
        return [job_from_row(_aware(row)) for row in self._rows(sql, params)]

    def latest_jobs(
        self, states: Iterable[JobState], *, limit: int, offset: int = 0
    ) -> Sequence[Job]:
        rows = self._rows(*lane_sql(states, "%s", limit=limit, offset=offset,
                                      limit_legs=True))
        return [job_from_row(_aware(row)) for row in rows]

    def count_jobs(self, states: Iterable[JobState]) -> int:
        rows = self._rows(*_count_sql(states, "%s"))
        return int(rows[0]["n"]) if rows else 0

    def get_flag(self, name: str) -> str | None:
        rows = self._rows("SELECT value FROM flags WHERE name = %s", [name])
        return str(rows[0]["value"]) if rows else None

    def daemons(self) -> Sequence[DaemonRecord]:
        rows = self._rows(DAEMONS_SQL, [])
        return [daemon_from_row(_aware(row, DAEMON_TIME_COLUMNS)) for row in rows]

    def cost_since(self, since: datetime) -> float:
        rows = self._rows(COST_SQL.format("%s"), [_naive_utc(since)])
        return float(rows[0]["total"]) if rows else 0.0

    def job(self, job_id: int) -> Job | None:
        rows = self._rows(JOB_SQL.format("%s"), [job_id])
        return job_from_row(_aware(rows[0])) if rows else None

    def stage_runs(self, job_id: int | None = None) -> Sequence[StageRun]:
        where, params = ("WHERE job_id = %s", [job_id]) if job_id is not None else ("", [])
        rows = self._rows(RUNS_SQL.format(where), params)
        return [stage_run_from_row(_aware(row, RUN_TIME_COLUMNS)) for row in rows]

    def events(self, job_id: int | None = None, after_id: int = 0,
               limit: int = 200) -> Sequence[Event]:
        where, params = ("AND job_id = %s", [job_id]) if job_id is not None else ("", [])
        sql = EVENTS_SQL.format(mark="%s", where=where)
        rows = self._rows(sql, [after_id, *params, limit])
        return [event_from_row(_aware(row, ("at",))) for row in rows]

    def change_mark(self) -> tuple[Any, ...]:
        rows = self._rows(CHANGE_SQL, [])
        return tuple(rows[0].values()) if rows else ()
