"""Where jobs wait: the registry of jobs, checkpoints (stage runs), events and flags.

`open_store(url)` gives a `Registry`, which implements `opus.seams.JobStore` on SQLite
(WAL, `BEGIN IMMEDIATE`) or PostgreSQL (`FOR UPDATE SKIP LOCKED`). Only this package
touches SQLAlchemy; everything it returns is a frozen `opus.domain` record.
"""

from opus.registry.store import Registry, open_store

__all__ = ["Registry", "open_store"]
