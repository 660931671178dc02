"""The board, a job and the metrics as the pages and the API show them (one source each)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from opus.board.lanes import ENDED_LANES, ENDED_SHOWN, Board, Lane, Window, board_snapshot
from opus.dashboard.context import DashboardContext
from opus.dashboard.jobview import event_row, job_detail, job_row, log_tail
from opus.domain import Job, JobState
from opus.errors import NotFound
from opus.metrics import Metrics, compute_metrics
from opus.status import status_report

CARD_TEXTS = ("title", "error", "reason", "pr")


WIDER = 100
"""Cards per page of an ended lane once the person asks for more than the first ten."""


def windows_of(query: Mapping[str, str]) -> dict[Lane, Window]:
    """The windows a query asks for on the ended lanes: `done_from=OFFSET&done_n=COUNT`
    (and `failed_…`); by default the latest ten. `ValueError` names a bad one."""
    found: dict[Lane, Window] = {}
    for lane in ENDED_LANES:
        offset, count = query.get(f"{lane.value}_from"), query.get(f"{lane.value}_n")
        try:
            found[lane] = Window(int(offset or 0), int(count or ENDED_SHOWN))
        except ValueError as err:
            raise ValueError(f"{lane.value}_from={offset}, {lane.value}_n={count}: {err}. "
                             "Both are whole numbers") from None
    return found


def window_query(windows: Mapping[Lane, Window], lane: Lane | None = None,
                 window: Window | None = None) -> str:
    """`?…` for `windows` (with `lane`'s replaced by `window`), naming only the windows
    that are not the default; "" when none is."""
    params: dict[str, int] = {}
    for name, shown in {**windows, **({lane: window} if lane and window else {})}.items():
        if shown.offset:
            params[f"{name.value}_from"] = shown.offset
        if shown.limit != ENDED_SHOWN:
            params[f"{name.value}_n"] = shown.limit
    return f"?{urlencode(params)}" if params else ""


@dataclass(frozen=True)
class Pager:
    """Links to the newer and older cards of an ended lane, and to a longer page."""

    first: int
    last: int
    newer: str | None
    older: str | None
    wider: str | None


def pagers(board: Board, windows: Mapping[Lane, Window]) -> dict[str, Pager]:
    """The pager of each ended lane with more cards than it shows (by lane value)."""
    found: dict[str, Pager] = {}
    for lane in ENDED_LANES:
        view, window = board.lane(lane), windows.get(lane, Window())
        if not view.older and not view.offset:
            continue
        step = window.limit

        def link(offset: int, limit: int, lane: Lane = lane) -> str:
            return "/" + window_query(windows, lane, Window(offset, limit))

        found[lane.value] = Pager(
            first=view.offset + 1, last=view.offset + len(view.cards),
            newer=link(max(0, view.offset - step), step) if view.offset else None,
            older=link(view.offset + step, step) if view.older else None,
            wider=link(view.offset, WIDER) if step < WIDER and view.older else None,
        )
    return found


def board(ctx: DashboardContext, windows: Mapping[Lane, Window] | None = None) -> Board:
    return board_snapshot(ctx.source, ctx.settings, ctx.now(), windows=windows)


def board_dict(ctx: DashboardContext,
               windows: Mapping[Lane, Window] | None = None) -> dict[str, Any]:
    """`/api/v1/board`: `opus.board.lanes.Board.as_dict()`, with card texts redacted."""
    data = board(ctx, windows).as_dict()
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
    report = status_report(ctx.source, ctx.settings, ctx.now(), jobs=())
    data = report.as_dict()
    return {key: data[key] for key in ("daemon_running", "daemons", "paused", "breakers",
                                       "budget")}
