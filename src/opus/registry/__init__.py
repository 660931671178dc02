"""Where jobs wait: the registry of jobs, checkpoints (stage runs), events and flags.

`open_store(url)` gives a `Registry`, which implements `opus.seams.JobStore` on SQLite
(WAL, `BEGIN IMMEDIATE`) or PostgreSQL (`FOR UPDATE SKIP LOCKED`). Only this package
touches SQLAlchemy; everything it returns is a frozen `opus.domain` record.
`opus.registry.reader.open_reader(url)` reads jobs and flags without SQLAlchemy, for
commands that only look. The package imports `store` (and SQLAlchemy) on first use of
`Registry` or `open_store`, so the reader stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opus.registry.store import Registry, open_store

__all__ = ["Registry", "open_store"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from opus.registry import store

        return getattr(store, name)
    raise AttributeError(f"module 'opus.registry' has no attribute {name!r}")
