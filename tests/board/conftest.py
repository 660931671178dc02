"""Board fixtures: a real registry (SQLite file or PostgreSQL) holding a job in every lane."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opus.config import BudgetConfig, DaemonConfig, DatabaseConfig, Settings, VaultConfig
from opus.conversation.questions import Question
from opus.conversation.waiting import Kind, Waiting, record_note, start_waiting, waiting_of
from opus.delivery.reactions import Reaction, with_reaction
from opus.domain import DaemonRecord, Job, JobState, Priority, Stage, StageRun
from opus.presence import daemon_info
from opus.registry import Registry, open_store
from opus.scheduling import Blocked
from opus.testing.clock import FakeClock
from tests.registry.conftest import pg_schema_url  # noqa: F401  (a fixture)
from tests.registry.factory import make_fr

REPO = Path("/srv/repos/api")
WORKER = "host:1:w"
DAEMON_ID = f"{socket.gethostname()}:{os.getpid()}:board"


@dataclass(frozen=True)
class Fleet:
    """A registry with one job in each state, as `opus run` would leave them."""

    url: str
    store: Registry
    clock: FakeClock
    settings: Settings
    jobs: dict[str, Job]


def project_settings(tmp_path: Path, url: str | None = None) -> Settings:
    """Settings of a project in `tmp_path` whose registry is at `url` (default: SQLite)."""
    return Settings(
        vault=VaultConfig(path=tmp_path / "vault"),
        daemon=DaemonConfig(state_dir=tmp_path / ".opus"),
        database=DatabaseConfig(url=url),
        budget=BudgetConfig(daily_usd=10),
        base_dir=tmp_path,
    )


def beat(store: Registry, clock: FakeClock, blocked: list[Blocked] | None = None) -> None:
    """This process's presence record, as a live daemon on this host writes it."""
    store.beat_daemon(DaemonRecord(
        id=DAEMON_ID, host=socket.gethostname(), pid=os.getpid(), role="all",
        version="0.1.0", started_at=clock.now() - timedelta(hours=1), beat_at=clock.now(),
        beat_every_s=20.0, info=daemon_info([], blocked or [], clock.now()),
    ))


def populate(store: Registry, clock: FakeClock) -> dict[str, Job]:
    """FR-Q1/FR-Q2 queued, FR-R running (code, round 2, $0.75), FR-W waiting for answers
    (asked 60 s ago), FR-E escalated in review (45 s ago), FR-P waiting for its plan's
    approval (30 s ago), FR-A in review, FR-Y approved and green, FR-D done, FR-F failed,
    FR-C cancelled; FR-9 planned, waiting on FR-8."""
    jobs = {fr: store.enqueue(make_fr(fr, priority=prio), REPO) for fr, prio in (
        ("FR-R", Priority.MEDIUM), ("FR-A", Priority.MEDIUM), ("FR-E", Priority.MEDIUM),
        ("FR-Y", Priority.MEDIUM), ("FR-W", Priority.MEDIUM), ("FR-P", Priority.MEDIUM),
        ("FR-D", Priority.MEDIUM), ("FR-F", Priority.MEDIUM), ("FR-C", Priority.MEDIUM))}
    for job in jobs.values():
        store.transition(job.id, JobState.RUNNING)
    clock.advance(60)
    for fr in ("FR-A", "FR-E", "FR-Y", "FR-D"):
        store.transition(jobs[fr].id, JobState.AWAITING_REVIEW, pr_url=f"https://forge/pr/{fr}")
    escalated = Reaction("ci", "escalated", "abc123", "test (failure)")
    store.update(jobs["FR-E"].id, spec=with_reaction(jobs["FR-E"].spec, escalated),
                 error="CI still failing on PR 3 — needs you: test (failure) (abc123)")
    ready = Reaction("ready", "ready", "def456", "approved, checks green")
    store.update(jobs["FR-Y"].id, spec=with_reaction(jobs["FR-Y"].spec, ready))
    store.transition(jobs["FR-D"].id, JobState.DONE)
    store.transition(jobs["FR-F"].id, JobState.FAILED, error="tests failed\nsecond line")
    store.transition(jobs["FR-C"].id, JobState.CANCELLED, error="cancelled by `opus cancel`")
    store.record_stage(StageRun(job_id=jobs["FR-R"].id, stage=Stage.PLAN, iteration=0, ok=True,
                                output={}, cost_usd=0.75, finished_at=clock.now()))
    store.update(jobs["FR-R"].id, stage=Stage.CODE, iteration=2)
    jobs["FR-Q1"] = store.enqueue(make_fr("FR-Q1", priority=Priority.LOW), REPO)
    jobs["FR-Q2"] = store.enqueue(make_fr("FR-Q2", priority=Priority.CRITICAL), REPO)
    _wait(store, jobs["FR-W"], "questions", clock.now() - timedelta(seconds=15))
    clock.advance(15)  # the intake host writes the question note later
    asked = store.get(jobs["FR-W"].id)
    note = f"{asked.fr_path.parent}/Q-FR-W.md"
    record_note(store, asked, replace(waiting_of(asked), note=note))  # type: ignore[arg-type]
    _wait(store, jobs["FR-P"], "plan", clock.now())
    blocked = Blocked(make_fr("FR-9", depends_on=("FR-8",)), ("FR-8",), "waits for FR-8")
    beat(store, clock, [blocked])
    clock.advance(30)
    return {fr: store.get(job.id) for fr, job in jobs.items()}


def _wait(store: Registry, job: Job, kind: Kind, since: datetime) -> None:
    """The job asks a person, as the worker's `start_waiting` records it."""
    questions = (Question("Which store?", ("redis", "memory"), "memory"),)
    start_waiting(store, job, Waiting(kind=kind, asked_by="planner", stage="plan",
                                      iteration=0, round=1, since=since.isoformat(),
                                      questions=questions if kind == "questions" else ()))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    url = (f"sqlite:///{tmp_path / '.opus' / 'opus.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    settings = project_settings(tmp_path, url)
    clock = FakeClock()
    store = open_store(url, clock=clock)
    try:
        yield Fleet(url, store, clock, settings, populate(store, clock))
    finally:
        store.close()


def finish_many(store: Registry, clock: FakeClock, *, done: int, failed: int) -> None:
    """`done` more jobs merged and `failed` more failed or cancelled (every third), one a
    second, as a long-running fleet leaves them."""
    for number in range(done + failed):
        job = store.enqueue(make_fr(f"FR-{1000 + number}"), REPO)
        store.transition(job.id, JobState.RUNNING)
        clock.advance(1)
        if number < done:
            store.transition(job.id, JobState.AWAITING_REVIEW)
            store.transition(job.id, JobState.DONE)
        else:
            ended = JobState.CANCELLED if number % 3 == 0 else JobState.FAILED
            store.transition(job.id, ended, error="tests failed")


@pytest.fixture
def long_fleet(fleet: Fleet) -> Fleet:
    """The fleet after 24 more merges and 13 more failures (25 Done, 15 Failed in all)."""
    finish_many(fleet.store, fleet.clock, done=24, failed=13)
    return fleet
