"""`opus metrics`: figures over the registry's jobs and stage runs. Pure: no I/O.

Definitions (the window is the last `days` days up to `now`, whole UTC days for the
per-day series):

- jobs/day: jobs created on each day of the window.
- success rate: of the window's jobs that reached an outcome, the share that opened a
  PR (`awaiting_review` or `done`) against those that `failed`; cancelled and unfinished
  jobs count for neither.
- pipeline duration: per job, the sum of its stage runs' durations (agent time; a wait
  for a human between review rounds is not pipeline time); the mean over window jobs.
- stage duration: mean and median duration of the window's stage runs, per stage.
- rounds per FR: for each FR with a job in the window, the most code→test→review rounds
  any of those jobs reached (the highest stage-run iteration; 0 before its first round).
- utilisation: stage-run time inside the window / (window length x max_concurrent).
- cost/day: stage-run cost by the day the run finished; total: every job's `cost_usd`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any

from opus.domain import Job, JobState, Stage, StageRun

SUCCEEDED = frozenset({JobState.AWAITING_REVIEW, JobState.DONE})


@dataclass(frozen=True)
class Metrics:
    """What `opus metrics` shows; `to_dict()` is its `--json` form."""

    since: datetime
    until: datetime
    jobs_per_day: tuple[tuple[date, int], ...]
    jobs: int
    succeeded: int
    failed: int
    success_rate: float | None
    mean_pipeline_s: float | None
    mean_stage_s: tuple[tuple[Stage, float], ...]
    utilisation: float
    cost_per_day: tuple[tuple[date, float], ...]
    cost_total_usd: float
    median_stage_s: tuple[tuple[Stage, float], ...] = ()
    rounds_per_fr: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (dates as ISO strings, stages by name)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "jobs_per_day": {day.isoformat(): count for day, count in self.jobs_per_day},
            "jobs": self.jobs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "success_rate": self.success_rate,
            "mean_pipeline_s": self.mean_pipeline_s,
            "mean_stage_s": {stage.value: secs for stage, secs in self.mean_stage_s},
            "utilisation": self.utilisation,
            "cost_per_day_usd": {day.isoformat(): usd for day, usd in self.cost_per_day},
            "cost_total_usd": self.cost_total_usd,
            "median_stage_s": {stage.value: secs for stage, secs in self.median_stage_s},
            "rounds_per_fr": dict(self.rounds_per_fr),
        }


def compute_metrics(
    jobs: Sequence[Job],
    runs: Sequence[StageRun],
    *,
    now: datetime,
    max_concurrent: int,
    days: int = 7,
) -> Metrics:
    """The figures of `opus metrics` over `jobs` and their stage `runs`."""
    until = _utc(now)
    since = until - timedelta(days=days)
    day_list = [until.date() - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    recent = [job for job in jobs if since <= _utc(job.created_at) <= until]
    recent_ids = {job.id for job in recent}
    succeeded = sum(job.state in SUCCEEDED for job in recent)
    failed = sum(job.state == JobState.FAILED for job in recent)
    return Metrics(
        since=since,
        until=until,
        jobs_per_day=_count_by_day(recent, day_list),
        jobs=len(recent),
        succeeded=succeeded,
        failed=failed,
        success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
        mean_pipeline_s=_mean_pipeline(runs, recent_ids),
        mean_stage_s=_by_stage(_mean, (run for run in runs if run.job_id in recent_ids)),
        utilisation=_utilisation(runs, since, until, max_concurrent),
        cost_per_day=_cost_by_day(runs, day_list),
        cost_total_usd=round(sum(job.cost_usd for job in jobs), 6),
        median_stage_s=_by_stage(median, (run for run in runs if run.job_id in recent_ids)),
        rounds_per_fr=_rounds_per_fr(recent, runs),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; opus stores UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _duration_s(run: StageRun) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (_utc(run.finished_at) - _utc(run.started_at)).total_seconds())


def _count_by_day(jobs: Sequence[Job], day_list: list[date]) -> tuple[tuple[date, int], ...]:
    counts: dict[date, int] = defaultdict(int)
    for job in jobs:
        counts[_utc(job.created_at).date()] += 1
    return tuple((day, counts[day]) for day in day_list)


def _mean_pipeline(runs: Sequence[StageRun], job_ids: set[int]) -> float | None:
    totals: dict[int, float] = defaultdict(float)
    for run in runs:
        duration = _duration_s(run)
        if run.job_id in job_ids and duration is not None:
            totals[run.job_id] += duration
    return sum(totals.values()) / len(totals) if totals else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _by_stage(
    average: Callable[[list[float]], float], runs: Iterable[StageRun]
) -> tuple[tuple[Stage, float], ...]:
    durations: dict[Stage, list[float]] = defaultdict(list)
    for run in runs:
        duration = _duration_s(run)
        if duration is not None:
            durations[run.stage].append(duration)
    return tuple((stage, float(average(durations[stage]))) for stage in Stage if durations[stage])


def _rounds_per_fr(jobs: Sequence[Job], runs: Sequence[StageRun]) -> tuple[tuple[str, int], ...]:
    fr_of = {job.id: job.fr_id for job in jobs}
    rounds = dict.fromkeys(sorted(fr_of.values()), 0)
    for run in runs:
        fr = fr_of.get(run.job_id)
        if fr is not None:
            rounds[fr] = max(rounds[fr], run.iteration)
    return tuple(rounds.items())


def _utilisation(
    runs: Sequence[StageRun], since: datetime, until: datetime, max_concurrent: int
) -> float:
    busy_s = 0.0
    for run in runs:
        if run.started_at is None or run.finished_at is None:
            continue
        start = max(_utc(run.started_at), since)
        end = min(_utc(run.finished_at), until)
        busy_s += max(0.0, (end - start).total_seconds())
    capacity_s = (until - since).total_seconds() * max(1, max_concurrent)
    return busy_s / capacity_s if capacity_s > 0 else 0.0


def _cost_by_day(runs: Sequence[StageRun], day_list: list[date]) -> tuple[tuple[date, float], ...]:
    costs: dict[date, float] = defaultdict(float)
    for run in runs:
        moment = run.finished_at or run.started_at
        if moment is not None:
            costs[_utc(moment).date()] += run.cost_usd
    return tuple((day, round(costs[day], 6)) for day in day_list)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def render_metrics(metrics: Metrics) -> str:
    """A plain-text report for the terminal."""
    rate = "-" if metrics.success_rate is None else f"{metrics.success_rate:.0%}"
    lines = [
        f"window: {metrics.since:%Y-%m-%d %H:%M} .. {metrics.until:%Y-%m-%d %H:%M} UTC",
        f"jobs: {metrics.jobs} ({metrics.succeeded} succeeded, {metrics.failed} failed); "
        f"success rate {rate}",
        f"mean pipeline duration: {_fmt_duration(metrics.mean_pipeline_s)}",
        f"agent utilisation: {metrics.utilisation:.1%}",
        f"cost: ${metrics.cost_total_usd:.2f} total",
        "",
        "day          jobs   cost",
    ]
    costs = dict(metrics.cost_per_day)
    for day, count in metrics.jobs_per_day:
        lines.append(f"{day.isoformat()}  {count:>4}  ${costs.get(day, 0.0):>6.2f}")
    if metrics.mean_stage_s:
        medians = dict(metrics.median_stage_s)
        lines += ["", "stage     mean    median"]
        lines += [f"{stage.value:<8}  {_fmt_duration(s):<6}  {_fmt_duration(medians.get(stage))}"
                  for stage, s in metrics.mean_stage_s]
    return "\n".join(lines)
