"""The board, a job and the metrics as the pages and the API show them (one source each)."""

from __future__ import annotations

from typing import Any

from opus.board.lanes import Board, board_snapshot
from opus.dashboard.context import DashboardContext
from opus.dashboard.jobview import event_row, job_detail, job_row, log_tail
from opus.domain import Job, JobState
from opus.errors import NotFound
from opus.metrics import Metrics, compute_metrics
from opus.status import status_report

CARD_TEXTS = ("title", "error", "reason", "pr")


def board(ctx: DashboardContext) -> Board:
    return board_snapshot(ctx.source, ctx.settings, ctx.now())


def board_dict(ctx: DashboardContext) -> dict[str, Any]:
    """`/api/v1/board`: `opus.board.lanes.Board.as_dict()`, with card texts redacted."""
    data = board(ctx).as_dict()
    for lane in data["lanes"]:
        for card in lane["cards"]:
            for key in CARD_TEXTS:
                if card.get(key):
                    card[key] = ctx.redactor.clean(str(card[key]))
    return data


def jobs_list(ctx: DashboardContext, states: list[str]) -> list[dict[str, Any]]:
    wanted = [JobState(state) for state in states] if states else None
    return [job_row(job, ctx.redactor) for job in ctx.source.jobs(wanted)]


def _job(ctx: DashboardContext, job_id: int) -> Job:
    job = ctx.source.job(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}; /api/v1/jobs lists the jobs")
    return job


def job_dict(ctx: DashboardContext, job_id: int) -> dict[str, Any]:
    """`/api/v1/jobs/{id}`: the job page's content; `NotFound` for an unknown id."""
    job = _job(ctx, job_id)
    runs = ctx.source.stage_runs(job.id)
    events = ctx.source.events(job.id)
    return job_detail(job, runs, events, ctx.files(job), ctx.redactor)


def log_dict(ctx: DashboardContext, job_id: int) -> dict[str, Any]:
    return log_tail(ctx.files(_job(ctx, job_id)).log, ctx.redactor)


def events_list(ctx: DashboardContext, job_id: int | None, after: int) -> list[dict[str, Any]]:
    return [event_row(e, ctx.redactor) for e in ctx.source.events(job_id, after_id=after)]


def metrics(ctx: DashboardContext) -> Metrics:
    """The figures of `opus metrics` (the same function over the same rows)."""
    return compute_metrics(ctx.source.jobs(), ctx.source.stage_runs(), now=ctx.now(),
                           max_concurrent=ctx.settings.daemon.max_concurrent)


def metrics_dict(ctx: DashboardContext) -> dict[str, Any]:
    """`opus metrics --json`, plus the daily budget the cost chart is drawn against."""
    return {**metrics(ctx).to_dict(), "daily_usd": float(ctx.settings.budget.daily_usd)}


def daemons_dict(ctx: DashboardContext) -> dict[str, Any]:
    """The daemons as `opus status --json` lists them, with pause and spend."""
    report = status_report(ctx.source, ctx.settings, ctx.now())
    data = report.as_dict()
    return {key: data[key] for key in ("daemon_running", "daemons", "paused", "breakers",
                                       "budget")}
