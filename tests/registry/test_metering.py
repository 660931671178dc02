"""`meter_stage` and a metered `record_stage`, on memory, a SQLite file and PostgreSQL: a
running stage's spend is in the job's and the day's cost after each call, once, and only
the worker holding the job writes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from opus.domain import Job, Stage, StageRun, Usage
from opus.registry import Registry
from opus.testing.clock import FakeClock
from tests.registry.factory import make_fr

REPO = Path("/srv/repos/api")
WORKER = "host:1:aaaaaa"


def _claimed(store: Registry) -> Job:
    store.enqueue(make_fr(), REPO)
    job = store.claim(WORKER, 60)
    assert job is not None
    return job


def _so_far(job: Job, clock: FakeClock, output_tokens: int, cost: float) -> StageRun:
    return StageRun(job_id=job.id, stage=Stage.CODE, iteration=1, ok=False,
                    output={"report": "unfinished"}, usage=Usage(100, output_tokens),
                    cost_usd=cost, started_at=clock.now(), finished_at=clock.now())


def test_each_call_adds_only_what_is_new_to_one_failed_run(
    store: Registry, clock: FakeClock
) -> None:
    job = _claimed(store)
    first = store.meter_stage(_so_far(job, clock, 10, 0.25), holder=WORKER, metered=None)
    assert first is not None
    clock.advance(5)
    again = store.meter_stage(_so_far(job, clock, 30, 0.75), holder=WORKER, metered=first)
    assert again == first

    [run] = store.stage_runs(job.id)
    assert (run.ok, run.usage, run.cost_usd) == (False, Usage(100, 30), 0.75)
    assert run.finished_at == clock.now()
    assert store.get(job.id).cost_usd == pytest.approx(0.75)
    assert store.cost_since(clock.now()) == pytest.approx(0.75)


def test_the_stage_end_rewrites_the_metered_run_and_adds_only_the_difference(
    store: Registry, clock: FakeClock
) -> None:
    job = _claimed(store)
    metered = store.meter_stage(_so_far(job, clock, 10, 0.5), holder=WORKER, metered=None)
    checkpoint = dataclasses.replace(_so_far(job, clock, 12, 0.6), ok=True,
                                     output={"summary": "done"}, commit="c0ffee")
    store.record_stage(checkpoint, metered=metered)

    assert list(store.stage_runs(job.id)) == [checkpoint]
    assert store.get(job.id).cost_usd == pytest.approx(0.6)
    assert store.job_cost(job.id) == pytest.approx(0.6)


def test_a_worker_that_lost_the_job_writes_nothing(store: Registry, clock: FakeClock) -> None:
    job = _claimed(store)
    metered = store.meter_stage(_so_far(job, clock, 10, 0.5), holder=WORKER, metered=None)
    assert store.release(job.id, WORKER)
    taken = store.claim("host:2:bbbbbb", 60)
    assert taken is not None and taken.id == job.id

    assert store.meter_stage(_so_far(job, clock, 20, 0.9), holder=WORKER, metered=metered) is None
    assert store.meter_stage(_so_far(job, clock, 20, 0.9), holder=WORKER, metered=None) is None
    [run] = store.stage_runs(job.id)
    assert run.cost_usd == 0.5
    assert store.get(job.id).cost_usd == pytest.approx(0.5)


def test_a_second_checkpoint_of_a_stage_leaves_the_metered_run_as_spent(
    store: Registry, clock: FakeClock
) -> None:
    job = _claimed(store)
    done = dataclasses.replace(_so_far(job, clock, 5, 0.2), ok=True, output={"summary": "a"})
    store.record_stage(done)
    metered = store.meter_stage(_so_far(job, clock, 10, 0.5), holder=WORKER, metered=None)
    store.record_stage(dataclasses.replace(done, cost_usd=0.6), metered=metered)

    runs = store.stage_runs(job.id)
    assert [(r.ok, r.cost_usd) for r in runs] == [(True, 0.2), (False, 0.5)]
    assert store.get(job.id).cost_usd == pytest.approx(0.7)
