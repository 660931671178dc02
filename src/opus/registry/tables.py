"""The registry's tables (SQLModel). Nothing outside `opus.registry` imports this module.

Times are stored as naive UTC (`UTCDateTime`) so that SQLite, which has no time zone
type, and PostgreSQL compare them the same way; they come back aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlmodel import Field, SQLModel

# The states in which a job counts as "active": at most one per FR (see `uq_jobs_active_fr`).
ACTIVE_STATES = ("queued", "running", "awaiting_review")


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


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _text(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(Text, nullable=nullable))


class JobRow(SQLModel, table=True):
    """One job per attempt at an FR; `spec` holds the FR fields the pipeline needs (JSON)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "priority_rank", "created_at", "id"),
        # Two intake processes racing on the same note cannot both create a job.
        Index(
            "uq_jobs_active_fr",
            "fr_id",
            unique=True,
            sqlite_where=text(f"state IN {ACTIVE_STATES!r}"),
            postgresql_where=text(f"state IN {ACTIVE_STATES!r}"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    fr_id: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(sa_column=Column(String(32), nullable=False))
    priority: str = Field(sa_column=Column(String(16), nullable=False))
    priority_rank: int = Field(sa_column=Column(Integer, nullable=False))
    content_hash: str = Field(sa_column=Column(String(128), nullable=False))
    fr_path: str = Field(sa_column=Column(Text, nullable=False))
    repo: str = Field(sa_column=Column(Text, nullable=False))
    base: str | None = _text()
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)
    stage: str | None = Field(default=None, sa_column=Column(String(32)))
    iteration: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    branch: str | None = _text()
    pr_url: str | None = _text()
    error: str | None = _text()
    cost_usd: float = Field(default=0.0, sa_column=Column(Float, nullable=False, default=0.0))
    worker: str | None = Field(default=None, sa_column=Column(String(200)))
    lease_until: datetime | None = _when()
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    spec: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class StageRunRow(SQLModel, table=True):
    """A checkpoint. An ok run of (job, stage, iteration) exists at most once."""

    __tablename__ = "stage_runs"
    __table_args__ = (
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

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(
        sa_column=Column(Integer, ForeignKey("jobs.id"), nullable=False, index=True)
    )
    stage: str = Field(sa_column=Column(String(32), nullable=False))
    iteration: int = Field(sa_column=Column(Integer, nullable=False))
    ok: bool = Field(sa_column=Column(Boolean, nullable=False))
    output: str = Field(sa_column=Column(Text, nullable=False))
    input_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    output_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    cache_read_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    cache_write_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    cost_usd: float = Field(default=0.0, sa_column=Column(Float, nullable=False, default=0.0))
    prompt_sha256: str | None = Field(default=None, sa_column=Column(String(64)))
    # "commit" is an SQL keyword; the column says what it holds instead.
    commit_sha: str | None = Field(default=None, sa_column=Column(String(64)))
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when(index=True)


class EventRow(SQLModel, table=True):
    """The append-only log: what happened to a job (or to the daemon, job_id NULL)."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("jobs.id"), index=True)
    )
    at: datetime = _when(nullable=False)
    kind: str = Field(sa_column=Column(String(64), nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))


class FlagRow(SQLModel, table=True):
    """Global switches shared by every daemon on the database (`paused`, ...)."""

    __tablename__ = "flags"

    name: str = Field(sa_column=Column(String(100), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


JOBS = _table(JobRow)
STAGE_RUNS = _table(StageRunRow)
EVENTS = _table(EventRow)
FLAGS = _table(FlagRow)
METADATA = SQLModel.metadata
