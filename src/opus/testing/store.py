"""An in-memory registry for fast unit tests: the real `Registry` on a private SQLite
database in memory, shared by every thread of the process."""

from __future__ import annotations

from opus.registry import Registry, open_store
from opus.seams import Clock


def memory_store(clock: Clock | None = None) -> Registry:
    """A fresh, empty registry in memory (gone when the last reference is)."""
    return open_store("sqlite://", clock=clock)
