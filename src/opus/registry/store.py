"""`Registry`: the `JobStore` on SQLite or PostgreSQL (see designs/registry.md).

Every public method is one short transaction and returns frozen domain records. A
claim is a single compare-and-set `UPDATE … RETURNING`; the other writes that race
(heartbeat, transition, release, update-in-place on enqueue) are compare-and-set too.
Each method, read or write, runs again when PostgreSQL aborts it for a deadlock or a
serialization failure (`retry_conflicts`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    exc,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.selectable import CompoundSelect, ScalarSelect, Select

from opus.clock import SystemClock
from opus.domain import (
    TRANSITIONS,
    DaemonRecord,
    Event,
    FeatureRequest,
    Job,
    JobState,
    Priority,
    QueueSummary,
    StageRun,
    can_transition,
)
from opus.errors import NotFound, StoreError
from opus.registry import records, spend
from opus.registry.conflicts import retry_conflicts
from opus.registry.engine import describe, is_memory, make_engine, normalise_url, translated
from opus.registry.tables import (
    DAEMONS,
    EVENTS,
    FLAGS,
    JOBS,
    METADATA,
    STAGE_RUNS,
    UTCDateTime,
)
from opus.seams import Clock

QUEUED, RUNNING = JobState.QUEUED.value, JobState.RUNNING.value
# FR ids per `IN (...)` list (well under SQLite's limit on bound parameters); beyond it,
# `latest_for_frs` reads the latest job of every FR in one statement instead.
IDS_PER_QUERY = 500


def open_store(url: str, *, clock: Clock | None = None, create: bool = True) -> Registry:
    """Open (and create, if needed) the registry at `url`; `create=False` for a registry
    known to exist (a job process: its daemon opened it), which skips a write transaction.

    `sqlite:///PATH` creates PATH's directory; `sqlite://` is a private in-memory
    database; `postgresql+psycopg://USER@HOST:PORT/DB` (or `postgresql://`) shares one
    registry between daemons. Raises `StoreError` saying what to check.
    """
    parsed = normalise_url(url)
    with translated(parsed):
        registry = Registry(make_engine(parsed), parsed, clock or SystemClock())
        if create:
            registry.create_tables()
    return registry


class Registry:
    """Implements `opus.seams.JobStore`. Safe to share between threads and processes."""

    def __init__(self, engine: Engine, url: URL, clock: Clock) -> None:
        self._engine = engine
        self._url = url
        self._clock = clock
        self._postgres = url.get_backend_name() == "postgresql"
        # The in-memory database is one shared connection: one transaction at a time.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if is_memory(url) else contextlib.nullcontext()
        )

    def __repr__(self) -> str:
        return f"Registry({describe(self._url)})"

    def create_tables(self) -> None:
        """Create missing tables and indexes (safe when two processes start together).

        `create_all` skips a table that exists, and with it any index added to the table
        since; `CREATE INDEX IF NOT EXISTS` brings an older database up to date.
        """
        for attempt in range(2):
            try:
                with self._tx() as conn:
                    METADATA.create_all(conn, checkfirst=True)
                    for table in METADATA.sorted_tables:
                        for index in sorted(table.indexes, key=lambda i: str(i.name)):
                            conn.execute(CreateIndex(index, if_not_exists=True))
                return
            except StoreError:
                # Another process created them between our check and our CREATE.
                if attempt:
                    raise

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._lock, translated(self._url), self._engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ jobs in

    def enqueue(self, fr: FeatureRequest, repo: Path) -> Job:
        """A queued job for `fr`; the same id and content hash never makes a second job.

        A note edited while its job waits unclaimed updates that job; once claimed the
        job keeps what it started with. A re-planned note after failed/cancelled (or new
        content after done) makes a new job, so the old attempt's history stays whole.
        """
        try:
            return self._enqueue_once(fr, repo)
        except StoreError as err:
            if not isinstance(err.__cause__, exc.IntegrityError):
                raise
            # Another intake process inserted the same FR between our read and write.
            return self._enqueue_once(fr, repo)

    @retry_conflicts
    def _enqueue_once(self, fr: FeatureRequest, repo: Path) -> Job:
        with self._tx() as conn:
            latest = self._latest(conn, fr.id)
            action = records.enqueue_action(latest, fr.content_hash)
            if action == "keep" and latest is not None:
                return latest
            now = self._clock.now()
            columns = records.fr_columns(fr, repo)
            if action == "update" and latest is not None:
                updated = self._cas(
                    conn,
                    latest.id,
                    and_(JOBS.c.state == QUEUED, JOBS.c.started_at.is_(None)),
                    {**columns, "updated_at": now},
                )
                return updated or self._get(conn, latest.id)
            row = conn.execute(
                insert(JOBS)
                .values(fr_id=fr.id, state=QUEUED, created_at=now, updated_at=now, **columns)
                .returning(*JOBS.c)
            ).one()
            return records.job_from_row(row._mapping)

    # ------------------------------------------------------------------ leases

    @retry_conflicts
    def claim(
        self, worker: str, lease_s: float, *, exclude_repos: Collection[str | Path] = ()
    ) -> Job | None:
        """Atomically take the most urgent claimable job, or None.

        Claimable: queued, or running with an expired lease (its worker is gone; the new
        one resumes at the first incomplete stage). Most urgent: priority, then age.
        Jobs whose repo is in `exclude_repos` (an open circuit breaker) are skipped.
        """
        now = self._clock.now()
        pick = self._claim_pick(now, [str(r) for r in exclude_repos])
        statement = (
            update(JOBS)
            .where(JOBS.c.id == pick, self._claimable(JOBS.c, now))
            .values(
                state=RUNNING,
                worker=worker,
                lease_until=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(JOBS.c.started_at, literal(now, UTCDateTime())),
                updated_at=now,
            )
            .returning(*JOBS.c)
        )
        with self._tx() as conn:
            row = conn.execute(statement).one_or_none()
        return None if row is None else records.job_from_row(row._mapping)

    def _claim_pick(self, now: datetime, excluded: list[str]) -> ScalarSelect[Any]:
        """The id of the most urgent claimable job, as a subquery.

        Two legs, each the first entry of one `state` range of `ix_jobs_claim` (already in
        priority, age, id order), then the better of the two: no sort of the queue, so
        a claim costs the same with 10 or 100,000 jobs waiting. An `OR` of the two states
        would make both databases collect and sort every queued job.
        """
        legs = []
        for name in ("queued", "expired"):
            pick = JOBS.alias(f"pick_{name}")
            where = (
                pick.c.state == QUEUED
                if name == "queued"
                else and_(pick.c.state == RUNNING, pick.c.lease_until < now)
            )
            leg = (
                select(pick.c.id, pick.c.priority_rank, pick.c.created_at)
                .where(where)
                .order_by(pick.c.priority_rank, pick.c.created_at, pick.c.id)
                .limit(1)
            )
            if excluded:
                leg = leg.where(pick.c.repo.not_in(excluded))
            if self._postgres:
                leg = leg.with_for_update(skip_locked=True)
            legs.append(select(leg.subquery(f"leg_{name}")))
        both = union_all(*legs).subquery("candidates")
        return (
            select(both.c.id)
            .order_by(both.c.priority_rank, both.c.created_at, both.c.id)
            .limit(1)
            .scalar_subquery()
        )

    @staticmethod
    def _claimable(columns: Any, now: datetime) -> ColumnElement[bool]:
        return or_(
            columns.state == QUEUED,
            and_(columns.state == RUNNING, columns.lease_until < now),
        )

    @retry_conflicts
    def heartbeat(self, job_id: int, worker: str, lease_s: float) -> bool:
        """Renew a lease; False when the worker no longer holds it."""
        now = self._clock.now()
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.state == RUNNING, JOBS.c.worker == worker)
                .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)
            )
        return result.rowcount == 1

    @retry_conflicts
    def release(self, job_id: int, worker: str) -> bool:
        """Put a running job back in the queue with its checkpoints (preemption, shutdown).

        False when `worker` does not hold it (any more).
        """
        with self._tx() as conn:
            job = self._cas(
                conn,
                job_id,
                and_(JOBS.c.state == RUNNING, JOBS.c.worker == worker),
                {"state": QUEUED, "worker": None, "lease_until": None,
                 "updated_at": self._clock.now()},
            )
        return job is not None

    # ------------------------------------------------------------------ job changes

    @retry_conflicts
    def transition(
        self, job_id: int, to: JobState, *, holder: str | None = None, **fields: Any
    ) -> Job:
        """Move a job to state `to` (checked against `opus.domain.TRANSITIONS`).

        Leaving running clears the worker and lease; ending sets `finished_at`. With
        `holder`, the job must still be held by that worker. `fields` as for `update`.
        """
        values = records.encode_fields(fields)
        with self._tx() as conn:
            job = self._get(conn, job_id)
            if not can_transition(job.state, to):
                raise StoreError(
                    f"job {job_id} ({job.fr_id}) cannot go from {job.state.value} to "
                    f"{to.value}; allowed: {_allowed(job.state)}"
                )
            guard = JOBS.c.state == job.state.value
            if holder is not None:
                guard = and_(guard, JOBS.c.worker == holder)
            values = {**records.transition_values(job, to, self._clock.now()), **values}
            moved = self._cas(conn, job_id, guard, values)
        if moved is None:
            raise StoreError(
                f"job {job_id} changed while moving it to {to.value} "
                f"(another worker or command got there first); re-read it and retry"
            )
        return moved

    @retry_conflicts
    def update(self, job_id: int, *, if_state: JobState | None = None, **fields: Any) -> Job:
        """Change fields other than the state (stage, iteration, branch, pr_url...).

        With `if_state`, only while the job is still in that state: a `StoreError` says
        when it moved meanwhile (e.g. answered while the intake recorded its note).
        """
        values = records.encode_fields(fields)
        guard = None if if_state is None else JOBS.c.state == if_state.value
        with self._tx() as conn:
            job = self._cas(conn, job_id, guard, {**values, "updated_at": self._clock.now()})
            if job is None and guard is not None:
                moved = self._get(conn, job_id)
                raise StoreError(
                    f"job {job_id} ({moved.fr_id}) is {moved.state.value}, no longer "
                    f"{if_state.value if if_state else ''}; re-read it"
                )
        if job is None:
            raise NotFound(f"no job {job_id}; `opus status` lists the jobs")
        return job

    def _cas(
        self,
        conn: Connection,
        job_id: int,
        guard: ColumnElement[bool] | None,
        values: dict[str, Any],
    ) -> Job | None:
        statement = update(JOBS).where(JOBS.c.id == job_id)
        if guard is not None:
            statement = statement.where(guard)
        row = conn.execute(statement.values(**values).returning(*JOBS.c)).one_or_none()
        return None if row is None else records.job_from_row(row._mapping)

    # ------------------------------------------------------------------ job reads

    @retry_conflicts
    def get(self, job_id: int) -> Job:
        """The job `job_id`; raises `NotFound`."""
        with self._tx() as conn:
            return self._get(conn, job_id)

    def _get(self, conn: Connection, job_id: int) -> Job:
        row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"no job {job_id}; `opus status` lists the jobs")
        return records.job_from_row(row._mapping)

    @retry_conflicts
    def latest_for_fr(self, fr_id: str) -> Job | None:
        """The most recent job made for the FR `fr_id`, or None."""
        with self._tx() as conn:
            return self._latest(conn, fr_id)

    def _latest(self, conn: Connection, fr_id: str) -> Job | None:
        row = conn.execute(_latest_query(fr_id)).one_or_none()
        return None if row is None else records.job_from_row(row._mapping)

    @retry_conflicts
    def latest_for_frs(self, fr_ids: Iterable[str]) -> Mapping[str, Job]:
        """The most recent job of each FR in `fr_ids` that has one, in one query; FRs
        without a job are left out.

        Up to `IDS_PER_QUERY` ids are looked up by `fr_id IN (…)`; for more (intake
        passes every FR note of the vault) one statement takes the latest job of every
        FR instead, which costs the number of jobs, not the size of the vault.
        """
        wanted = set(fr_ids)
        if not wanted:
            return {}
        query = (
            _latest_many_query(sorted(wanted))
            if len(wanted) <= IDS_PER_QUERY
            else _latest_every_query()
        )
        with self._tx() as conn:
            jobs = [records.job_from_row(row._mapping) for row in conn.execute(query)]
        return {job.fr_id: job for job in jobs if job.fr_id in wanted}

    @retry_conflicts
    def changed_since(self, since: datetime) -> Sequence[Job]:
        """The jobs whose row changed at or after `since` (by `updated_at`), oldest change
        first: what intake mirrors into notes on a turn, whatever the registry's size."""
        with self._tx() as conn:
            rows = conn.execute(_changed_query(since)).all()
        return [records.job_from_row(row._mapping) for row in rows]

    @retry_conflicts
    def queue_summary(self) -> QueueSummary:
        """How many jobs are queued and running, and the most urgent queued priority."""
        with self._tx() as conn:
            rows = {state: (n, rank) for state, n, rank in conn.execute(_summary_query())}
        queued, rank = rows.get(QUEUED, (0, None))
        return QueueSummary(
            queued=queued,
            running=rows.get(RUNNING, (0, None))[0],
            most_urgent_queued=None if rank is None else list(Priority)[rank],
        )

    @retry_conflicts
    def jobs(self, states: Iterable[JobState] | None = None) -> Sequence[Job]:
        """Every job (in `states`, when given), oldest first."""
        query = select(JOBS).order_by(JOBS.c.id)
        if states is not None:
            query = query.where(JOBS.c.state.in_([JobState(s).value for s in states]))
        with self._tx() as conn:
            return [records.job_from_row(row._mapping) for row in conn.execute(query)]

    @retry_conflicts
    def latest_jobs(
        self, states: Iterable[JobState], *, limit: int, offset: int = 0
    ) -> Sequence[Job]:
        """The jobs in `states` that changed last, latest first (a page of a lane)."""
        query = lane_query(states, limit=limit, offset=offset, limit_legs=self._postgres)
        with self._tx() as conn:
            return [records.job_from_row(row._mapping) for row in conn.execute(query)]

    @retry_conflicts
    def count_jobs(self, states: Iterable[JobState]) -> int:
        """How many jobs are in `states`."""
        query = (select(func.count()).select_from(JOBS)
                 .where(JOBS.c.state.in_([JobState(s).value for s in states])))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # ------------------------------------------------------------------ checkpoints

    def record_stage(self, run: StageRun, *, metered: int | None = None) -> None:
        """Store a checkpoint and add its cost to the job.

        `metered`: the run `meter_stage` kept this stage's spend in while it ran; it
        becomes `run`, and the job's cost grows by what `run` adds to it. An ok run of a
        (job, stage, iteration) that already has one is ignored (a metered run stays as
        it was, a failed run holding what it spent): a completed stage is recorded once,
        even if a worker that lost its lease finishes it too.
        """
        try:
            self._record_stage(run, metered)
        except StoreError as err:
            if not (run.ok and isinstance(err.__cause__, exc.IntegrityError)):
                raise

    @retry_conflicts
    def _record_stage(self, run: StageRun, metered: int | None) -> None:
        with self._tx() as conn:
            self._get(conn, run.job_id)
            if run.ok and self._has_ok_run(conn, run):
                return
            if metered is not None:
                spend.close(conn, run, metered)
                return
            conn.execute(insert(STAGE_RUNS).values(**records.stage_run_columns(run)))
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == run.job_id)
                .values(cost_usd=JOBS.c.cost_usd + run.cost_usd)
            )

    @retry_conflicts
    def meter_stage(self, run: StageRun, *, holder: str, metered: int | None) -> int | None:
        """Record what a running stage has spent so far (`run`: its stage, round, usage
        and cost to date; not ok) in the failed run `metered` (None: a new one), adding
        what is new to the job's cost, in one transaction and only while `holder` holds
        the job. Returns the run's id for the next call, or None when `holder` no longer
        holds the job (nothing is written). See `opus.registry.spend`.
        """
        with self._tx() as conn:
            return spend.meter(conn, run, holder=holder, metered=metered)

    @staticmethod
    def _has_ok_run(conn: Connection, run: StageRun) -> bool:
        found = conn.execute(
            select(STAGE_RUNS.c.id).where(
                STAGE_RUNS.c.job_id == run.job_id,
                STAGE_RUNS.c.stage == run.stage.value,
                STAGE_RUNS.c.iteration == run.iteration,
                STAGE_RUNS.c.ok.is_(True),
            )
        ).first()
        return found is not None

    @retry_conflicts
    def stage_runs(self, job_id: int) -> Sequence[StageRun]:
        """A job's checkpoints in the order they were recorded."""
        query = select(STAGE_RUNS).where(STAGE_RUNS.c.job_id == job_id)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(STAGE_RUNS.c.id)).all()
        return [records.stage_run_from_row(row._mapping) for row in rows]

    def job_cost(self, job_id: int) -> float:
        """What a job's stage runs cost, in USD."""
        return self._cost(STAGE_RUNS.c.job_id == job_id)

    def cost_since(self, since: datetime) -> float:
        """What every stage run finished at or after `since` cost, in USD."""
        return self._cost(STAGE_RUNS.c.finished_at >= since)

    @retry_conflicts
    def _cost(self, where: ColumnElement[bool]) -> float:
        with self._tx() as conn:
            return float(conn.execute(_cost_query(where)).scalar_one())

    # ------------------------------------------------------------------ events, flags

    @retry_conflicts
    def add_event(self, job_id: int | None, kind: str, message: str) -> None:
        """Append to the log (job_id None: about the daemon, not one job)."""
        with self._tx() as conn:
            conn.execute(
                insert(EVENTS).values(
                    job_id=job_id, at=self._clock.now(), kind=kind, message=message
                )
            )

    @retry_conflicts
    def events(self, job_id: int | None = None, after_id: int = 0) -> Sequence[Event]:
        """Events with id > `after_id` (of one job, when given), in order."""
        query = select(EVENTS).where(EVENTS.c.id > after_id).order_by(EVENTS.c.id)
        if job_id is not None:
            query = query.where(EVENTS.c.job_id == job_id)
        with self._tx() as conn:
            return [records.event_from_row(row._mapping) for row in conn.execute(query)]

    @retry_conflicts
    def get_flag(self, name: str) -> str | None:
        """A global flag's value, or None when unset."""
        with self._tx() as conn:
            value = conn.execute(select(FLAGS.c.value).where(FLAGS.c.name == name)).scalar()
        return None if value is None else str(value)

    @retry_conflicts
    def set_flag(self, name: str, value: str | None) -> None:
        """Set a global flag; None removes it."""
        with self._tx() as conn:
            if value is None:
                conn.execute(delete(FLAGS).where(FLAGS.c.name == name))
                return
            upsert = (postgresql.insert if self._postgres else sqlite.insert)(FLAGS)
            conn.execute(
                upsert.values(name=name, value=value).on_conflict_do_update(
                    index_elements=[FLAGS.c.name], set_={"value": value}
                )
            )

    # ------------------------------------------------------------------ daemons

    @retry_conflicts
    def beat_daemon(self, record: DaemonRecord) -> None:
        """Insert or renew a daemon's presence record (see `opus.presence`)."""
        columns = records.daemon_columns(record)
        changes = {k: v for k, v in columns.items() if k not in ("id", "started_at")}
        upsert = (postgresql.insert if self._postgres else sqlite.insert)(DAEMONS)
        with self._tx() as conn:
            conn.execute(
                upsert.values(**columns).on_conflict_do_update(
                    index_elements=[DAEMONS.c.id], set_=changes
                )
            )

    @retry_conflicts
    def daemons(self) -> Sequence[DaemonRecord]:
        """Every daemon record, live or left behind by a crash, oldest first."""
        query = select(DAEMONS).order_by(DAEMONS.c.started_at, DAEMONS.c.id)
        with self._tx() as conn:
            return [records.daemon_from_row(row._mapping) for row in conn.execute(query)]

    @retry_conflicts
    def forget_daemon(self, daemon_id: str) -> None:
        """Remove a daemon's record (it stopped, or it died and another cleans up)."""
        with self._tx() as conn:
            conn.execute(delete(DAEMONS).where(DAEMONS.c.id == daemon_id))


    # ------------------------------------------------------------------ query plans

    def hot_queries(self) -> dict[str, Select[Any]]:
        """The reads the daemon runs every loop turn, with sample parameters: each must
        use an index (tests/registry/test_query_plans.py), or a turn grows with the
        number of jobs."""
        now = self._clock.now()
        return {
            "claim": select(self._claim_pick(now, [])),
            "claim, a repo excluded": select(self._claim_pick(now, ["/srv/repos/api"])),
            "latest_for_fr": _latest_query("FR-1"),
            "latest_for_frs": _latest_many_query(["FR-1", "FR-2", "FR-3"]),
            "queue_summary": _summary_query(),
            "changed_since": _changed_query(now - timedelta(seconds=5)),
            "cost_since": _cost_query(STAGE_RUNS.c.finished_at >= now),
        }

    def query_plan(
        self, statement: Select[Any] | CompoundSelect[Any] | str, params: Sequence[Any] = ()
    ) -> list[str]:
        """What the database says it will do for `statement` (`EXPLAIN QUERY PLAN` on
        SQLite, `EXPLAIN` on PostgreSQL), one line per step. A string is driver SQL (what
        `reader.py` runs) with its `params`."""
        with self._tx() as conn:
            sql = statement if isinstance(statement, str) else statement.compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN" if self._postgres else "EXPLAIN QUERY PLAN"
            args = (tuple(params),) if params else ()
            rows = conn.exec_driver_sql(f"{prefix} {sql}", *args).all()
        return [str(row[0]) if self._postgres else str(row[-1]) for row in rows]


def lane_query(
    states: Iterable[JobState], *, limit: int, offset: int, limit_legs: bool
) -> Select[Any]:
    """A page of the jobs in `states`, latest change first (`latest_jobs`; `reader.py`
    runs the same as `lane_sql`), in two steps (designs/registry.md).

    The page's keys (id, updated_at) come from `ix_jobs_lane` alone, which holds each
    state's keys in page order: one backward walk of a state's range that stops after
    `offset + limit` entries, so skipped entries are index entries, never rows. Several
    states (Failed: failed, cancelled) are one such walk per state, merged as they come.
    SQLite merges plain legs (and would sort limited ones); PostgreSQL merges only legs
    that are each ordered and limited (`limit_legs`), and sorts every key of plain ones.
    Then the page's `limit` rows are read by their ids.
    """
    values = [JobState(state).value for state in states]
    order = (JOBS.c.updated_at.desc(), JOBS.c.id.desc())
    keys: Select[Any] | CompoundSelect[Any]
    if len(values) < 2:
        keys = (select(JOBS.c.id, JOBS.c.updated_at).where(JOBS.c.state.in_(values))
                .order_by(*order))
    else:
        legs: list[Select[Any]] = [
            select(JOBS.c.id, JOBS.c.updated_at).where(JOBS.c.state == value)
            for value in values]
        if limit_legs:
            ordered = [leg.order_by(*order).limit(offset + limit).subquery(f"leg_{number}")
                       for number, leg in enumerate(legs)]
            legs = [select(leg.c.id, leg.c.updated_at) for leg in ordered]
        keys = union_all(*legs)
        keys = keys.order_by(keys.selected_columns.updated_at.desc(),
                             keys.selected_columns.id.desc())
    page = keys.limit(limit).offset(offset).subquery("page")
    return (select(JOBS).join(page, JOBS.c.id == page.c.id)
            .order_by(page.c.updated_at.desc(), page.c.id.desc()))


def _latest_query(fr_id: str) -> Select[Any]:
    return select(JOBS).where(JOBS.c.fr_id == fr_id).order_by(JOBS.c.id.desc()).limit(1)


def _latest_many_query(fr_ids: Sequence[str]) -> Select[Any]:
    newest = select(func.max(JOBS.c.id)).where(JOBS.c.fr_id.in_(fr_ids)).group_by(JOBS.c.fr_id)
    return select(JOBS).where(JOBS.c.id.in_(newest))


def _latest_every_query() -> Select[Any]:
    newest = select(func.max(JOBS.c.id)).group_by(JOBS.c.fr_id)
    return select(JOBS).where(JOBS.c.id.in_(newest))


def _changed_query(since: datetime) -> Select[Any]:
    return select(JOBS).where(JOBS.c.updated_at >= since).order_by(JOBS.c.updated_at)


def _summary_query() -> Select[Any]:
    return (
        select(JOBS.c.state, func.count(), func.min(JOBS.c.priority_rank))
        .where(JOBS.c.state.in_([QUEUED, RUNNING]))
        .group_by(JOBS.c.state)
    )


def _cost_query(where: ColumnElement[bool]) -> Select[Any]:
    return select(func.coalesce(func.sum(STAGE_RUNS.c.cost_usd), 0.0)).where(where)


def _allowed(state: JobState) -> str:
    targets = sorted(s.value for s in TRANSITIONS[state])
    return ", ".join(targets) or "none (it has ended)"
