"""Frozen domain records and the enums with their written transition tables.

Everything outside the registry sees these, never the registry's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return list(Priority).index(self)


class FRStatus(StrEnum):
    DRAFT = "draft"
    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    REVIEW = "review"
    DONE = "done"
    FAILED = "failed"
    INVALID = "invalid"
    CANCELLED = "cancelled"


FOLDER_FOR_STATUS: dict[FRStatus, str] = {
    FRStatus.DRAFT: "02_drafts",
    FRStatus.PLANNED: "03_planned",
    FRStatus.IN_PROGRESS: "04_in_progress",
    FRStatus.REVIEW: "05_review",
    FRStatus.DONE: "06_done",
    FRStatus.FAILED: "07_failed",
    FRStatus.INVALID: "07_failed",
    FRStatus.CANCELLED: "07_failed",
}


class JobState(StrEnum):
    """Lifecycle of a job in the registry.

    queued: waiting for a worker.  running: a worker holds its lease.
    waiting_input: waiting for a person (answers to questions, or a plan to approve);
    it holds no lease and no slot (designs/conversation.md).
    awaiting_review: a PR is open for a human.  done: merged.
    failed: gave up, with a reason.  cancelled: stopped by a human or a closed PR.
    """

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    AWAITING_REVIEW = "awaiting_review"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # queued → running by a claim; cancelled by a human.
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    # running → queued when preempted, drained at shutdown or its lease expired.
    # running → waiting_input when an agent or the FR has questions, or a plan awaits approval.
    JobState.RUNNING: frozenset(
        {JobState.QUEUED, JobState.WAITING_INPUT, JobState.AWAITING_REVIEW, JobState.FAILED,
         JobState.CANCELLED}
    ),
    # waiting_input → queued once answered (or the plan decided); cancelled by a rejected
    # plan, a deleted question note or `opus cancel`.
    JobState.WAITING_INPUT: frozenset(
        {JobState.QUEUED, JobState.CANCELLED, JobState.FAILED}
    ),
    # awaiting_review → queued when a human requests changes (a new round).
    JobState.AWAITING_REVIEW: frozenset(
        {JobState.DONE, JobState.CANCELLED, JobState.QUEUED, JobState.FAILED}
    ),
    JobState.DONE: frozenset(),
    # failed → queued by `opus retry` or by a re-planned note.
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


def can_transition(src: JobState, dst: JobState) -> bool:
    return dst in TRANSITIONS[src]


FR_STATUS_FOR_JOB: dict[JobState, FRStatus] = {
    JobState.QUEUED: FRStatus.IN_PROGRESS,
    JobState.RUNNING: FRStatus.IN_PROGRESS,
    JobState.WAITING_INPUT: FRStatus.IN_PROGRESS,
    JobState.AWAITING_REVIEW: FRStatus.REVIEW,
    JobState.DONE: FRStatus.DONE,
    JobState.FAILED: FRStatus.FAILED,
    JobState.CANCELLED: FRStatus.CANCELLED,
}


class Stage(StrEnum):
    PLAN = "plan"
    CODE = "code"
    TEST = "test"
    REVIEW = "review"
    DELIVER = "deliver"


class Role(StrEnum):
    PLANNER = "planner"
    CODER = "coder"
    REVIEWER = "reviewer"


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    """A parsed, valid FR note."""

    id: str
    title: str
    status: FRStatus
    path: Path
    body: str
    content_hash: str
    priority: Priority = Priority.MEDIUM
    repo: Path | None = None
    base: str | None = None
    depends_on: tuple[str, ...] = ()
    test_command: str | None = None
    setup: str | None = None
    """The worktree setup command (`setup:`), else the repo's or a detected one."""
    allowed_paths: tuple[str, ...] = ()
    budget_usd: float | None = None
    budget_minutes: float | None = None
    job: int | None = None
    open_questions: str | None = None
    """`open_questions:` (ask, recommend, ignore): overrides `pipeline.open_questions`."""
    approve_plan: bool | None = None
    """`approve_plan:`: overrides `pipeline.approve_plan` for this FR."""


@dataclass(frozen=True)
class Job:
    id: int
    fr_id: str
    title: str
    state: JobState
    priority: Priority
    content_hash: str
    fr_path: Path
    repo: Path
    base: str | None
    created_at: datetime
    updated_at: datetime
    stage: Stage | None = None
    iteration: int = 0
    branch: str | None = None
    pr_url: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    worker: str | None = None
    lease_until: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    """The FR fields the pipeline needs (body, test_command, allowed_paths, budget)."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


UNFINISHED_REASON = "unfinished"
"""The `stop_reason` of a stage run whose spend is metered while its stage has not ended
(`pipeline.metering`): the stage under way, or one a kill or an error cut short."""


@dataclass(frozen=True)
class StageRun:
    """A checkpoint: one completed (or failed) stage of a job."""

    job_id: int
    stage: Stage
    iteration: int
    ok: bool
    output: dict[str, Any]
    usage: Usage = Usage()
    cost_usd: float = 0.0
    prompt_sha256: str | None = None
    commit: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    id: int
    job_id: int | None
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class QueueSummary:
    """What the daemon loop needs to know about the queue each turn, in one query."""

    queued: int = 0
    running: int = 0
    most_urgent_queued: Priority | None = None


@dataclass(frozen=True)
class DaemonRecord:
    """A running `opus run` as it last reported itself (see `opus.presence`)."""

    id: str
    """The worker id, `host:pid:nonce`."""
    host: str
    pid: int
    role: str
    version: str
    started_at: datetime
    beat_at: datetime
    beat_every_s: float
    """How often it promised to beat; a remote record older than a few beats is stale."""
    info: dict[str, Any] = field(default_factory=dict)
    """What only the daemon knows: open breakers, FRs waiting on dependencies, last turn."""
