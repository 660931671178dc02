"""What the dashboard reads: the driver-only registry reader, never a write lock.

`opus.registry.reader` opens SQLite read-only (no `BEGIN IMMEDIATE`, so a page never
waits on the daemon's writes nor holds them up) and PostgreSQL with plain `SELECT`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from opus.domain import Event, Job, StageRun
from opus.seams import JobReader


class BoardSource(JobReader, Protocol):
    """A `JobReader` that also reads one job, checkpoints, events and a change mark."""

    def job(self, job_id: int) -> Job | None: ...

    def stage_runs(self, job_id: int | None = None) -> Sequence[StageRun]:
        """A job's checkpoints (every job's when None), in the order recorded."""
        ...

    def events(
        self, job_id: int | None = None, after_id: int = 0, limit: int = 200
    ) -> Sequence[Event]:
        """The latest `limit` events with id > `after_id`, oldest first."""
        ...

    def change_mark(self) -> tuple[Any, ...]:
        """A value that differs whenever anything the board shows has changed."""
        ...

    def close(self) -> None:
        """Release what the reader keeps open (a PostgreSQL connection)."""
        ...


def open_source(url: str) -> BoardSource:
    """The reader for `database.url`."""
    from opus.registry.reader import PostgresReader, SQLiteReader, open_reader

    reader = open_reader(url, keep_open=True)
    assert isinstance(reader, SQLiteReader | PostgresReader)
    return reader
