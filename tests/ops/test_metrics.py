"""Metrics over constructed jobs and stage runs; every figure worked out by hand below."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from opus.domain import Job, JobState, Priority, Stage, StageRun
from opus.metrics import compute_metrics, render_metrics

NOW = datetime(2026, 1, 8, 12, 0, tzinfo=UTC)  # window: 01-01 12:00 .. 01-08 12:00


def at(day: int, hour: int, minute: int = 0, month: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def job(job_id: int, created: datetime, state: JobState, cost: float) -> Job:
    return Job(
        id=job_id, fr_id=f"FR-{job_id}", title="t", state=state, priority=Priority.MEDIUM,
        content_hash="h", fr_path=Path("n.md"), repo=Path("/r"), base="main",
        created_at=created, updated_at=created, cost_usd=cost,
    )


def run(job_id: int, stage: Stage, start: datetime, end: datetime | None, cost: float) -> StageRun:
    return StageRun(
        job_id=job_id, stage=stage, iteration=1, ok=True, output={},
        cost_usd=cost, started_at=start, finished_at=end,
    )


JOBS = [
    job(1, at(2, 10), JobState.DONE, 1.5),
    job(2, at(5, 9), JobState.AWAITING_REVIEW, 2.0),
    job(3, at(5, 20), JobState.FAILED, 0.5),
    job(4, at(8, 11), JobState.RUNNING, 0.25),
    job(5, at(20, 0, month=12, year=2025), JobState.DONE, 10.0),  # before the window
    job(6, at(7, 8).replace(tzinfo=None), JobState.CANCELLED, 0.0),  # naive, as SQLite gives
]
RUNS = [
    run(1, Stage.PLAN, at(2, 10, 0), at(2, 10, 10), 0.2),  # 600 s
    run(1, Stage.CODE, at(2, 10, 10), at(2, 10, 40), 1.0),  # 1800 s
    run(1, Stage.TEST, at(2, 10, 40), at(2, 10, 45), 0.0),  # 300 s
    run(2, Stage.PLAN, at(5, 9, 0), at(5, 9, 20), 0.5),  # 1200 s
    run(2, Stage.CODE, at(5, 9, 20), at(5, 10, 0), 1.5),  # 2400 s
    run(3, Stage.CODE, at(5, 20), at(5, 23), 0.5),  # 10800 s
    run(4, Stage.PLAN, at(8, 11), None, 0.0),  # still running: no duration
    run(5, Stage.PLAN, at(20, 0, month=12, year=2025), at(20, 0, 30, month=12, year=2025), 3.0),
    run(5, Stage.CODE, at(1, 11), at(1, 13), 2.0),  # straddles the window start: 3600 s inside
]


def test_figures() -> None:
    m = compute_metrics(JOBS, RUNS, now=NOW, max_concurrent=3)

    assert m.jobs_per_day == tuple(
        (date(2026, 1, day), count)
        for day, count in [(2, 1), (3, 0), (4, 0), (5, 2), (6, 0), (7, 1), (8, 1)]
    )
    assert (m.jobs, m.succeeded, m.failed) == (5, 2, 1)
    assert m.success_rate == pytest.approx(2 / 3)
    # jobs 1, 2, 3: 2700 s, 3600 s, 10800 s
    assert m.mean_pipeline_s == pytest.approx(5700)
    assert [stage for stage, _s in m.mean_stage_s] == [Stage.PLAN, Stage.CODE, Stage.TEST]
    assert dict(m.mean_stage_s) == pytest.approx(
        {Stage.PLAN: 900, Stage.CODE: 5000, Stage.TEST: 300}
    )
    # 2700 + 3600 + 10800 + 3600 busy seconds over 7 days x 3 slots
    assert m.utilisation == pytest.approx(20700 / (7 * 86400 * 3))
    assert dict(m.cost_per_day) == {
        date(2026, 1, 2): pytest.approx(1.2),
        date(2026, 1, 3): 0,
        date(2026, 1, 4): 0,
        date(2026, 1, 5): pytest.approx(2.5),
        date(2026, 1, 6): 0,
        date(2026, 1, 7): 0,
        date(2026, 1, 8): 0,
    }
    assert m.cost_total_usd == pytest.approx(14.25)


def test_json_form_round_trips() -> None:
    data = json.loads(json.dumps(compute_metrics(JOBS, RUNS, now=NOW, max_concurrent=3).to_dict()))
    assert data["jobs_per_day"]["2026-01-05"] == 2
    assert data["mean_stage_s"]["code"] == pytest.approx(5000)
    assert data["cost_per_day_usd"]["2026-01-02"] == pytest.approx(1.2)
    assert data["success_rate"] == pytest.approx(2 / 3)


def test_render() -> None:
    text = render_metrics(compute_metrics(JOBS, RUNS, now=NOW, max_concurrent=3))
    assert "jobs: 5 (2 succeeded, 1 failed); success rate 67%" in text
    assert "mean pipeline duration: 95m00s" in text
    assert "agent utilisation: 1.1%" in text
    assert "cost: $14.25 total" in text
    assert "2026-01-05     2  $  2.50" in text
    assert "code      83m20s" in text


def test_empty_registry() -> None:
    m = compute_metrics([], [], now=NOW, max_concurrent=3, days=3)
    assert (m.jobs, m.success_rate, m.mean_pipeline_s, m.utilisation) == (0, None, None, 0.0)
    assert [count for _day, count in m.jobs_per_day] == [0, 0, 0]
    assert "success rate -" in render_metrics(m)


def test_median_stage_durations_and_rounds_per_fr() -> None:
    runs = [*RUNS, run(2, Stage.PLAN, at(5, 10), at(5, 10, 1), 0.0),  # 60 s: plan's median
            StageRun(job_id=3, stage=Stage.TEST, iteration=3, ok=False, output={},
                     started_at=at(5, 21), finished_at=at(5, 21, 5))]
    m = compute_metrics(JOBS, runs, now=NOW, max_concurrent=3)
    # plan runs of window jobs: 600 s, 1200 s, 60 s (job 4's has no end)
    assert dict(m.median_stage_s)[Stage.PLAN] == 600
    assert dict(m.median_stage_s)[Stage.CODE] == 2400  # 1800, 2400, 10800
    assert dict(m.rounds_per_fr) == {"FR-1": 1, "FR-2": 1, "FR-3": 3, "FR-4": 1, "FR-6": 0}
    data = m.to_dict()
    assert data["median_stage_s"]["plan"] == 600 and data["rounds_per_fr"]["FR-3"] == 3
    assert "plan      10m20s  10m00s" in render_metrics(m)  # mean 620 s, median 600 s
