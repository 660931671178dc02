"""The registry's tables (SQLAlchemy Core). Nothing outside `opus.registry` imports this.

Times are stored as naive UTC (`UTCDateTime`) so that SQLite, which has no time zone
type, and PostgreSQL compare them the same way; they come back aware.

Plain Core `Table`s, not ORM models: the registry only ever runs statements, and the ORM
layer would cost every `opus` command a third of a second of imports for nothing.
Every index here is also created on open when missing (`Registry.create_tables`), so a
database made by an older opus gets the indexes the hot queries need.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

# The states in which a job counts as "active": at most one per FR (see `uq_jobs_live_fr`).
ACTIVE_STATES = ("queued", "running", "waiting_input", "awaiting_review")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC; a naive input is taken to be UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _when(name: str, *, nullable: bool = True) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable)


METADATA = MetaData()

# One job per attempt at an FR; `spec` holds the FR fields the pipeline needs (JSON).
JOBS = Table(
    "jobs",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("fr_id", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("priority_rank", Integer, nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("fr_path", Text, nullable=False),
    Column("repo", Text, nullable=False),
    Column("base", Text),
    _when("created_at", nullable=False),
    _when("updated_at", nullable=False),
    Column("stage", String(32)),
    Column("iteration", Integer, nullable=False, default=0),
    Column("branch", Text),
    Column("pr_url", Text),
    Column("error", Text),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("worker", String(200)),
    _when("lease_until"),
    _when("started_at"),
    _when("finished_at"),
    Column("spec", Text, nullable=False, default="{}"),
    # The claim: the most urgent queued job is the first entry of the `queued` range.
    Index("ix_jobs_claim", "state", "priority_rank", "created_at", "id"),
    # The latest job of an FR (`latest_for_fr`, `latest_for_frs`): max(id) per fr_id.
    # (Databases made before it also have `ix_jobs_fr_id` on fr_id alone; harmless.)
    Index("ix_jobs_fr_latest", "fr_id", "id"),
    # The jobs changed since a moment (`changed_since`): intake mirrors only those.
    Index("ix_jobs_updated_at", "updated_at"),
    # A page of an ended lane (`latest_jobs`): one state's range, already in (updated_at,
    # id) order, read backwards from its end, so a page never sorts the lane's jobs.
    Index("ix_jobs_lane", "state", "updated_at", "id"),
    # Two intake processes racing on the same note cannot both create a job. (Databases
    # made before `waiting_input` also keep the narrower `uq_jobs_active_fr`; harmless.)
    Index(
        "uq_jobs_live_fr",
        "fr_id",
        unique=True,
        sqlite_where=text(f"state IN {ACTIVE_STATES!r}"),
        postgresql_where=text(f"state IN {ACTIVE_STATES!r}"),
    ),
)

# A checkpoint. An ok run of (job, stage, iteration) exists at most once.
STAGE_RUNS = Table(
    "stage_runs",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("stage", String(32), nullable=False),
    Column("iteration", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("output", Text, nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cache_read_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("prompt_sha256", String(64)),
    # "commit" is an SQL keyword; the column says what it holds instead.
    Column("commit_sha", String(64)),
    _when("started_at"),
    Column("finished_at", UTCDateTime(), index=True),
    Index(
        "uq_stage_runs_ok",
        "job_id",
        "stage",
        "iteration",
        unique=True,
        sqlite_where=text("ok"),
        postgresql_where=text("ok"),
    ),
)

# The append-only log: what happened to a job (or to the daemon, job_id NULL).
EVENTS = Table(
    "events",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), index=True),
    _when("at", nullable=False),
    Column("kind", String(64), nullable=False),
    Column("message", Text, nullable=False),
)

# Global switches shared by every daemon on the database (`paused`, ...).
FLAGS = Table(
    "flags",
    METADATA,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# One row per running daemon, renewed by its heartbeat and removed when it stops
# (see `opus.presence`).
DAEMONS = Table(
    "daemons",
    METADATA,
    Column("id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("version", String(32), nullable=False),
    _when("started_at", nullable=False),
    _when("beat_at", nullable=False),
    Column("beat_every_s", Float, nullable=False),
    Column("info", Text, nullable=False, default="{}"),
)
