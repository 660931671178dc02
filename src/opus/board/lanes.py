"""Jobs sorted into the board's lanes, and the snapshot both boards draw.

`lane_of(job)` is the one place that decides a job's lane: a job that waits for a person
is in "Needs you" whatever its state (the rules in `NEEDS_YOU`), an approved and green PR
is "Ready to merge", and otherwise the state decides (`LANE_FOR_STATE`). Why a queued job
waits (a dependency, the pause, the daily budget, an open breaker) is what `opus status`
says, taken from `opus.status` so the boards and the CLI never disagree.

`board_snapshot` reads the registry through any `JobReader` (the driver-only
`opus.registry.reader` on SQLite or PostgreSQL, or a `Registry`) and returns frozen
records whose `as_dict()` is JSON-ready. The lanes of ended jobs (Done, Failed) hold a
window of their latest cards (`Window`: ten by default) and their `total`, so a registry
with 10,000 finished jobs reads and draws ten of each, not all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from opus.config import Settings
from opus.conversation.waiting import waiting_of
from opus.delivery.reactions import is_ready, standing
from opus.domain import Job, JobState, Priority
from opus.seams import JobReader
from opus.status import (
    BreakerView,
    DaemonView,
    StatusReport,
    StatusRow,
    activity,
    status_report,
)


class Lane(StrEnum):
    """A column of the board, left to right; the values are the API's names."""

    QUEUED = "queued"
    RUNNING = "running"
    NEEDS_YOU = "needs_you"
    IN_REVIEW = "in_review"
    READY = "ready"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return LANE_LABELS[self]


LANE_LABELS: dict[Lane, str] = {
    Lane.QUEUED: "Queued / Waiting",
    Lane.RUNNING: "Running",
    Lane.NEEDS_YOU: "Needs you",
    Lane.IN_REVIEW: "In review",
    Lane.READY: "Ready to merge",
    Lane.DONE: "Done",
    Lane.FAILED: "Failed",
}

LANE_FOR_STATE: dict[str, Lane] = {
    "queued": Lane.QUEUED,
    "running": Lane.RUNNING,
    "waiting_input": Lane.NEEDS_YOU,
    "awaiting_review": Lane.IN_REVIEW,
    "done": Lane.DONE,
    "failed": Lane.FAILED,
    # Cancelled ends like failed: nothing delivered, and `opus retry` takes both back.
    "cancelled": Lane.FAILED,
}
"""Where a job goes by its registry state (keyed by value, so a new state is one line)."""

ENDED_LANES: dict[Lane, tuple[JobState, ...]] = {
    Lane.DONE: (JobState.DONE,),
    Lane.FAILED: (JobState.FAILED, JobState.CANCELLED),
}
"""The lanes of ended jobs, read a window at a time, and the states each holds."""
ENDED_SHOWN = 10
"""Cards of an ended lane on a board unless a window says otherwise (the latest)."""
WINDOW_MAX = 1000
"""The most cards of one ended lane a board reads at once."""


@dataclass(frozen=True)
class Window:
    """Which cards of an ended lane a board holds: `limit` of them, latest first, after
    skipping `offset`."""

    offset: int = 0
    limit: int = ENDED_SHOWN

    def __post_init__(self) -> None:
        if self.offset < 0 or not 1 <= self.limit <= WINDOW_MAX:
            raise ValueError(f"a lane shows 1 to {WINDOW_MAX} cards from an offset of 0 "
                             f"or more, not {self.limit} from {self.offset}")


def latest(limit: int) -> dict[Lane, Window]:
    """Windows on the latest `limit` cards of every ended lane."""
    return {lane: Window(limit=limit) for lane in ENDED_LANES}


NeedsRule = Callable[[Job], str | None]
"""Says what a job needs from a person (shown on its card), or None."""


def _needs_answer(job: Job) -> str | None:
    """A job waiting for answers to its questions or for its plan to be approved."""
    if job.state is not JobState.WAITING_INPUT:
        return None
    waiting = waiting_of(job)
    what = "plan approval" if waiting is not None and waiting.kind == "plan" else "questions"
    return f"{what}: {Path(waiting.note).name}" if waiting is not None and waiting.note else what


def _escalated(job: Job) -> str | None:
    """A PR opus handed to a person within its caps (CI still failing, a conflict it could
    not resolve): an escalation standing in the job's PR reactions, while the PR waits."""
    if job.state is not JobState.AWAITING_REVIEW:  # a queued or running round works on it
        return None
    found = standing(job.spec)
    if not found:
        return None
    what = (job.error or "").split(" — needs you")[0] or f"{found[0].kind}: {found[0].trigger}"
    return f"escalation: {what}"


NEEDS_YOU: tuple[NeedsRule, ...] = (_needs_answer, _escalated)
"""Checked in order; the first that answers puts the job in "Needs you" with its reason."""


def lane_of(job: Job) -> tuple[Lane, str | None]:
    """The job's lane, and what its card says about why it is there (or None)."""
    for rule in NEEDS_YOU:
        need = rule(job)
        if need:
            return Lane.NEEDS_YOU, need
    if job.state is JobState.AWAITING_REVIEW and is_ready(job.spec):
        return Lane.READY, "approved and green"
    return LANE_FOR_STATE[job.state.value], None


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, kw_only=True)
class Card(StatusRow):
    """One job on the board, or a planned FR that has no job yet (`job` None): its
    `opus status` row (`error` cut to its first line), and where it sits and why."""

    lane: Lane
    reason: str | None
    """Why it is in its lane: what a queued job waits on, what a person is asked for."""
    priority: str | None
    since_s: float | None
    """How long since the job last changed; for a job waiting for a person, since it asked."""
    repo: str | None
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        values = _shallow(self)  # every field is a plain value: no deep copy needed
        values["lane"] = self.lane.value
        values["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return values


@dataclass(frozen=True)
class LaneView:
    """A lane's cards: all of them, or for an ended lane the window read (`offset` is
    where it starts among the lane's `total` cards, latest first)."""

    lane: Lane
    cards: tuple[Card, ...]
    total: int = -1
    """How many cards the lane has in all (-1: exactly `cards`)."""
    offset: int = 0

    def __post_init__(self) -> None:
        if self.total < 0:
            object.__setattr__(self, "total", len(self.cards))

    @property
    def label(self) -> str:
        return self.lane.label

    @property
    def older(self) -> int:
        """Cards after the window (older ones)."""
        return max(0, self.total - self.offset - len(self.cards))

    def as_dict(self) -> dict[str, Any]:
        return {"lane": self.lane.value, "label": self.label, "total": self.total,
                "offset": self.offset, "cards": [card.as_dict() for card in self.cards]}


@dataclass(frozen=True)
class Board:
    """Every lane with its cards, and what holds claiming (pause, budget, breakers)."""

    at: datetime
    lanes: tuple[LaneView, ...]
    paused: bool
    spent_today_usd: float
    daily_usd: float
    daemons: tuple[DaemonView, ...]
    breakers: tuple[BreakerView, ...]
    problems: int
    """Notes opus cannot use (`opus status` lists them)."""

    @property
    def daemons_running(self) -> int:
        return sum(1 for daemon in self.daemons if daemon.alive)

    def lane(self, lane: Lane) -> LaneView:
        return next(view for view in self.lanes if view.lane is lane)

    def card(self, job_id: int) -> Card | None:
        return next((c for view in self.lanes for c in view.cards if c.job == job_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "paused": self.paused,
            "spent_today_usd": round(self.spent_today_usd, 4),
            "daily_usd": float(self.daily_usd),
            "daemons_running": self.daemons_running,
            "daemons": [_iso_times(daemon.as_dict()) for daemon in self.daemons],
            "breakers": [asdict(breaker) for breaker in self.breakers],
            "problems": self.problems,
            "lanes": [view.as_dict() for view in self.lanes],
        }


def _iso_times(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


def board_snapshot(
    store: JobReader, settings: Settings, now: datetime, *, host: str | None = None,
    windows: Mapping[Lane, Window] | None = None,
) -> Board:
    """The board as of `now`, read from the registry once: every job that has not
    ended, and of each ended lane the window `windows` names (default: the latest ten)
    and its count."""
    windows = windows or {}
    ended = {state for states in ENDED_LANES.values() for state in states}
    jobs = list(store.jobs([state for state in JobState if state not in ended]))
    totals: dict[Lane, tuple[int, int]] = {}
    for lane, states in ENDED_LANES.items():
        window = windows.get(lane, Window())
        jobs += store.latest_jobs(states, limit=window.limit, offset=window.offset)
        totals[lane] = (store.count_jobs(states), window.offset)
    report = status_report(store, settings, now, host=host, jobs=jobs)
    return board_from(report, jobs, now, totals)


def board_from(
    report: StatusReport, jobs: Sequence[Job], now: datetime,
    totals: Mapping[Lane, tuple[int, int]] | None = None,
) -> Board:
    """The board for a status report and the jobs it was built from (no I/O); `totals`:
    each windowed lane's count and the window's offset."""
    by_id = {job.id: job for job in jobs}
    cards = [_card(row, by_id.get(row.job) if row.job is not None else None, now)
             for row in report.jobs]
    totals = totals or {}
    return Board(
        at=now,
        lanes=tuple(LaneView(lane, _ordered(lane, cards), *totals.get(lane, (-1, 0)))
                    for lane in Lane),
        paused=report.paused,
        spent_today_usd=report.spent_today_usd,
        daily_usd=report.daily_usd,
        daemons=tuple(report.daemons),
        breakers=tuple(report.breakers),
        problems=len(report.problems),
    )


def _card(row: StatusRow, job: Job | None, now: datetime) -> Card:
    lane, reason = lane_of(job) if job is not None else (Lane.QUEUED, None)
    since = row.waited_s  # a job waiting for a person: since it asked
    if since is None and job is not None:
        since = max(0.0, (now - job.updated_at).total_seconds())
    error = (row.error or "").strip().splitlines()
    return Card(
        **{**_shallow(row), "error": error[0] if error else None},
        lane=lane, reason=reason or row.waiting or activity(row.state, row.stage),
        priority=job.priority.value if job is not None else None, since_s=since,
        repo=str(job.repo) if job is not None else None,
        updated_at=job.updated_at if job is not None else None,
    )


def _shallow(record: StatusRow) -> dict[str, Any]:
    """A row's fields by name; `asdict`'s deep copies cost half a 1,000-job board."""
    return {field.name: getattr(record, field.name) for field in fields(record)}


def _ordered(lane: Lane, cards: Iterable[Card]) -> tuple[Card, ...]:
    return tuple(sorted((card for card in cards if card.lane is lane), key=ORDER[lane]))


def _claim_order(card: Card) -> tuple[float, ...]:
    """Most urgent first, then oldest, as a worker claims; planned FRs (no job yet) last."""
    if card.job is None:
        return (1, 0, 0)
    rank = Priority(card.priority).rank if card.priority else len(Priority)
    return (0, rank, card.job)


def _longest_running(card: Card) -> tuple[float, ...]:
    return (-(card.elapsed_s or 0.0),)


def _longest_waiting(card: Card) -> tuple[float, ...]:
    return (-(card.since_s or 0.0),)


def _latest_change(card: Card) -> tuple[float, ...]:
    return (card.since_s or 0.0, -(card.job or 0))


ORDER: dict[Lane, Callable[[Card], tuple[float, ...]]] = {
    Lane.QUEUED: _claim_order,
    Lane.RUNNING: _longest_running,
    Lane.NEEDS_YOU: _longest_waiting,
    Lane.IN_REVIEW: _latest_change,
    Lane.READY: _latest_change,
    Lane.DONE: _latest_change,
    Lane.FAILED: _latest_change,
}
"""How each lane's cards are ordered, top first."""
