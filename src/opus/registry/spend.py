"""A running stage's spend, written call by call (designs/pipeline.md, "Spend, call by
call"): the statements behind `Registry.meter_stage` and a metered `record_stage`.

A stage's first billed model call inserts a failed stage run holding what it cost; each
later call updates that run to the stage's totals so far; the stage's end (a checkpoint,
or a failed run) rewrites the same row. `jobs.cost_usd` gets only the difference each
time, so whatever ends the stage (even a SIGKILL between two calls) it counts every
billed call once. Each function runs inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from opus.domain import JobState, StageRun
from opus.errors import StoreError
from opus.registry import records
from opus.registry.tables import JOBS, STAGE_RUNS

SPEND_COLUMNS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
    "finished_at",
)
"""What a metering write changes in the stage's run: its totals and when they were billed
(`finished_at`, which `cost_since` counts the day's spend by)."""


def meter(conn: Connection, run: StageRun, *, holder: str, metered: int | None) -> int | None:
    """Write `run` (the stage's totals so far, not ok) into the run `metered` (None: a new
    run) and add what is new to the job's cost, only while `holder` holds the job (running,
    leased to it). The run's id, or None when `holder` lost the job: nothing is written."""
    before = 0.0 if metered is None else _cost_of(conn, run.job_id, metered)
    held = conn.execute(
        update(JOBS)
        .where(JOBS.c.id == run.job_id, JOBS.c.state == JobState.RUNNING.value,
               JOBS.c.worker == holder)
        .values(cost_usd=JOBS.c.cost_usd + (run.cost_usd - before))
    )  # fmt: skip
    if held.rowcount != 1:
        return None
    columns = records.stage_run_columns(run)
    if metered is None:
        inserted = conn.execute(insert(STAGE_RUNS).values(**columns).returning(STAGE_RUNS.c.id))
        return int(inserted.scalar_one())
    spend = {name: columns[name] for name in SPEND_COLUMNS}
    conn.execute(update(STAGE_RUNS).where(STAGE_RUNS.c.id == metered).values(**spend))
    return metered


def close(conn: Connection, run: StageRun, metered: int) -> None:
    """Rewrite the metered run as `run` (the stage's checkpoint or failed run, with its
    final totals) and add the difference to the job's cost."""
    before = _cost_of(conn, run.job_id, metered)
    columns = records.stage_run_columns(run)
    conn.execute(update(STAGE_RUNS).where(STAGE_RUNS.c.id == metered).values(**columns))
    conn.execute(
        update(JOBS)
        .where(JOBS.c.id == run.job_id)
        .values(cost_usd=JOBS.c.cost_usd + (run.cost_usd - before))
    )


def _cost_of(conn: Connection, job_id: int, run_id: int) -> float:
    cost = conn.execute(
        select(STAGE_RUNS.c.cost_usd).where(STAGE_RUNS.c.id == run_id,
                                             STAGE_RUNS.c.job_id == job_id)
    ).scalar_one_or_none()  # fmt: skip
    if cost is None:
        raise StoreError(f"job {job_id} has no stage run {run_id} to record its spend in")
    return float(cost)
