"""Every `Registry` method, on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from opus.domain import Job, JobState, Priority, Stage, StageRun, Usage
from opus.errors import NotFound, StoreError
from opus.registry import Registry
from opus.testing.clock import FakeClock
from tests.registry.factory import make_fr

REPO = Path("/srv/repos/api")


def _run(job_id: int, stage: Stage, iteration: int = 0, *, ok: bool = True,
         cost: float = 0.5, clock: FakeClock | None = None) -> StageRun:
    at = clock.now() if clock else None
    return StageRun(
        job_id=job_id, stage=stage, iteration=iteration, ok=ok,
        output={"summary": f"{stage} {iteration}", "steps": [{"title": "a"}]},
        usage=Usage(10, 20, 30, 40), cost_usd=cost, prompt_sha256="ab" * 32,
        commit="c0ffee" * 6 + "abcd", started_at=at, finished_at=at,
    )


# --------------------------------------------------------------------------- enqueue


def test_enqueue_stores_the_fr_as_a_queued_job(store: Registry, clock: FakeClock) -> None:
    fr = make_fr("FR-061", "Body text", priority=Priority.HIGH)
    job = store.enqueue(fr, REPO)
    assert isinstance(job, Job)
    assert (job.fr_id, job.title, job.state, job.priority) == (
        "FR-061", fr.title, JobState.QUEUED, Priority.HIGH)
    assert (job.repo, job.fr_path, job.content_hash) == (REPO, fr.path, fr.content_hash)
    assert job.spec["body"] == "Body text"
    assert job.spec["test_command"] == "pytest -q"
    assert job.spec["allowed_paths"] == ["src/**"]
    assert job.created_at == clock.now()
    assert job.created_at.tzinfo is not None
    assert store.get(job.id) == job
    assert store.latest_for_fr("FR-061") == job
    assert store.latest_for_fr("FR-999") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.DONE  # type: ignore[misc]


def test_same_content_never_makes_a_second_job(store: Registry, clock: FakeClock) -> None:
    first = store.enqueue(make_fr("FR-1", "same"), REPO)
    clock.advance(5)
    again = store.enqueue(make_fr("FR-1", "same"), REPO)
    assert again == first
    assert len(store.jobs()) == 1


def test_editing_a_queued_note_updates_its_job(store: Registry, clock: FakeClock) -> None:
    first = store.enqueue(make_fr("FR-1", "old body"), REPO)
    clock.advance(5)
    edited = make_fr("FR-1", "new body", title="New title", priority=Priority.CRITICAL)
    job = store.enqueue(edited, REPO)
    assert job.id == first.id
    assert (job.title, job.priority, job.content_hash) == (
        "New title", Priority.CRITICAL, edited.content_hash)
    assert job.spec["body"] == "new body"
    assert job.updated_at == clock.now()
    assert len(store.jobs()) == 1


def test_editing_after_the_claim_changes_nothing(store: Registry) -> None:
    first = store.enqueue(make_fr("FR-1", "old body"), REPO)
    claimed = store.claim("w1", 60)
    assert claimed is not None
    job = store.enqueue(make_fr("FR-1", "new body"), REPO)
    assert job == claimed
    assert job.content_hash == first.content_hash
    assert job.spec["body"] == "old body"


def test_released_job_keeps_its_content_when_edited(store: Registry) -> None:
    store.enqueue(make_fr("FR-1", "old body"), REPO)
    claimed = store.claim("w1", 60)
    assert claimed is not None
    assert store.release(claimed.id, "w1")
    job = store.enqueue(make_fr("FR-1", "new body"), REPO)
    assert job.state is JobState.QUEUED
    assert job.spec["body"] == "old body"


@pytest.mark.parametrize("ended", [JobState.FAILED, JobState.CANCELLED])
def test_replanned_after_failure_is_a_new_job(store: Registry, ended: JobState) -> None:
    old = store.enqueue(make_fr("FR-1", "body"), REPO)
    store.transition(old.id, ended, error="boom")
    new = store.enqueue(make_fr("FR-1", "body"), REPO)
    assert new.id != old.id
    assert new.state is JobState.QUEUED
    assert store.get(old.id).state is ended
    assert store.latest_for_fr("FR-1") == new


def test_done_job_is_kept_for_same_content_and_new_for_new(store: Registry) -> None:
    job = store.enqueue(make_fr("FR-1", "body"), REPO)
    assert store.claim("w", 60) is not None
    store.transition(job.id, JobState.AWAITING_REVIEW, pr_url="http://pr/1")
    store.transition(job.id, JobState.DONE)
    assert store.enqueue(make_fr("FR-1", "body"), REPO).id == job.id
    assert store.enqueue(make_fr("FR-1", "more work"), REPO).id != job.id


def test_at_most_one_active_job_per_fr(store: Registry) -> None:
    old = store.enqueue(make_fr("FR-1", "body"), REPO)
    store.transition(old.id, JobState.FAILED)
    store.enqueue(make_fr("FR-1", "body"), REPO)
    with pytest.raises(StoreError):
        store.transition(old.id, JobState.QUEUED)


# --------------------------------------------------------------------------- claim


def test_claim_takes_priority_then_age(store: Registry, clock: FakeClock) -> None:
    low = store.enqueue(make_fr("FR-1", priority=Priority.LOW), REPO)
    clock.advance(1)
    medium_old = store.enqueue(make_fr("FR-2"), REPO)
    clock.advance(1)
    critical = store.enqueue(make_fr("FR-3", priority=Priority.CRITICAL), REPO)
    clock.advance(1)
    medium_new = store.enqueue(make_fr("FR-4"), REPO)
    order = [store.claim("w", 60) for _ in range(4)]
    assert [j.id for j in order if j] == [critical.id, medium_old.id, medium_new.id, low.id]
    assert store.claim("w", 60) is None


def test_claim_takes_a_lease(store: Registry, clock: FakeClock) -> None:
    job = store.enqueue(make_fr(), REPO)
    claimed = store.claim("host-a:1", 90)
    assert claimed is not None and claimed.id == job.id
    assert claimed.state is JobState.RUNNING
    assert claimed.worker == "host-a:1"
    assert claimed.lease_until == clock.now() + timedelta(seconds=90)
    assert claimed.started_at == clock.now()
    assert store.get(job.id) == claimed
    assert store.claim("host-b:1", 90) is None


def test_claim_on_an_empty_store_is_none(store: Registry) -> None:
    assert store.claim("w", 60) is None


def test_expired_lease_is_claimable_by_another_worker(
    store: Registry, clock: FakeClock
) -> None:
    store.enqueue(make_fr(), REPO)
    first = store.claim("w1", 60)
    assert first is not None
    clock.advance(59)
    assert store.claim("w2", 60) is None
    clock.advance(2)
    second = store.claim("w2", 60)
    assert second is not None and second.id == first.id
    assert second.worker == "w2"
    assert second.started_at == first.started_at
    assert not store.heartbeat(first.id, "w1", 60)
    assert store.heartbeat(first.id, "w2", 60)


def test_heartbeat_renews_only_for_the_holder(store: Registry, clock: FakeClock) -> None:
    store.enqueue(make_fr(), REPO)
    job = store.claim("w1", 60)
    assert job is not None
    clock.advance(50)
    assert not store.heartbeat(job.id, "intruder", 60)
    assert store.get(job.id).lease_until == job.lease_until
    assert store.heartbeat(job.id, "w1", 60)
    assert store.get(job.id).lease_until == clock.now() + timedelta(seconds=60)
    clock.advance(50)
    assert store.claim("w2", 60) is None
    assert not store.heartbeat(9999, "w1", 60)


def test_claim_skips_excluded_repos(store: Registry) -> None:
    store.enqueue(make_fr("FR-1", priority=Priority.CRITICAL), Path("/repos/broken"))
    other = store.enqueue(make_fr("FR-2"), Path("/repos/fine"))
    claimed = store.claim("w", 60, exclude_repos=[Path("/repos/broken")])
    assert claimed is not None and claimed.id == other.id
    assert store.claim("w", 60, exclude_repos=["/repos/broken"]) is None
    assert store.claim("w", 60) is not None


def test_release_requeues_with_checkpoints(store: Registry) -> None:
    store.enqueue(make_fr(), REPO)
    job = store.claim("w1", 60)
    assert job is not None
    store.record_stage(_run(job.id, Stage.PLAN))
    assert not store.release(job.id, "w2")
    assert store.release(job.id, "w1")
    back = store.get(job.id)
    assert (back.state, back.worker, back.lease_until) == (JobState.QUEUED, None, None)
    assert [r.stage for r in store.stage_runs(job.id)] == [Stage.PLAN]
    again = store.claim("w2", 60)
    assert again is not None and again.id == job.id
    assert again.started_at == job.started_at


# --------------------------------------------------------------------------- transitions


def test_transition_leaving_running_clears_the_lease(
    store: Registry, clock: FakeClock
) -> None:
    store.enqueue(make_fr(), REPO)
    job = store.claim("w1", 60)
    assert job is not None
    clock.advance(10)
    review = store.transition(job.id, JobState.AWAITING_REVIEW, pr_url="http://x/pr/1",
                              stage=Stage.DELIVER)
    assert (review.state, review.worker, review.lease_until) == (
        JobState.AWAITING_REVIEW, None, None)
    assert (review.pr_url, review.stage, review.finished_at) == (
        "http://x/pr/1", Stage.DELIVER, None)
    clock.advance(10)
    done = store.transition(job.id, JobState.DONE)
    assert done.finished_at == clock.now()
    assert done.state.ended


def test_illegal_transition_names_both_states(store: Registry) -> None:
    job = store.enqueue(make_fr(), REPO)
    with pytest.raises(StoreError, match="from queued to done"):
        store.transition(job.id, JobState.DONE)
    store.transition(job.id, JobState.CANCELLED)
    with pytest.raises(StoreError, match="from cancelled to running"):
        store.transition(job.id, JobState.RUNNING)
    with pytest.raises(NotFound):
        store.transition(424242, JobState.CANCELLED)


def test_transition_with_holder_refuses_a_lost_lease(
    store: Registry, clock: FakeClock
) -> None:
    store.enqueue(make_fr(), REPO)
    job = store.claim("w1", 60)
    assert job is not None
    clock.advance(61)
    assert store.claim("w2", 60) is not None
    with pytest.raises(StoreError, match="changed while moving"):
        store.transition(job.id, JobState.FAILED, holder="w1", error="late")
    done = store.transition(job.id, JobState.FAILED, holder="w2", error="real")
    assert (done.state, done.error) == (JobState.FAILED, "real")


def test_retry_requeues_a_failed_job(store: Registry) -> None:
    job = store.enqueue(make_fr(), REPO)
    failed = store.transition(job.id, JobState.FAILED, error="tests failed")
    assert failed.error == "tests failed" and failed.finished_at is not None
    again = store.transition(job.id, JobState.QUEUED)
    assert (again.state, again.error, again.finished_at) == (JobState.QUEUED, None, None)


def test_update_changes_fields_but_not_state(store: Registry, clock: FakeClock) -> None:
    job = store.enqueue(make_fr(), REPO)
    clock.advance(3)
    new = store.update(job.id, stage=Stage.CODE, iteration=2, branch="opus/fr-001-x",
                       spec={"body": "b"})
    assert (new.stage, new.iteration, new.branch, new.state) == (
        Stage.CODE, 2, "opus/fr-001-x", JobState.QUEUED)
    assert new.spec == {"body": "b"}
    assert new.updated_at == clock.now()
    with pytest.raises(StoreError, match="cannot update job field"):
        store.update(job.id, state="done")
    with pytest.raises(NotFound):
        store.update(424242, stage=Stage.CODE)
    with pytest.raises(NotFound):
        store.get(424242)


def test_jobs_filters_by_state(store: Registry) -> None:
    a = store.enqueue(make_fr("FR-1"), REPO)
    b = store.enqueue(make_fr("FR-2"), REPO)
    store.transition(b.id, JobState.CANCELLED)
    assert [j.id for j in store.jobs()] == [a.id, b.id]
    assert [j.id for j in store.jobs([JobState.QUEUED])] == [a.id]
    assert [j.id for j in store.jobs([JobState.CANCELLED, JobState.RUNNING])] == [b.id]
    assert store.jobs([]) == []


# --------------------------------------------------------------------------- checkpoints


def test_stage_runs_round_trip_in_order(store: Registry, clock: FakeClock) -> None:
    job = store.enqueue(make_fr(), REPO)
    runs = [_run(job.id, Stage.PLAN, clock=clock), _run(job.id, Stage.CODE, 1, clock=clock),
            _run(job.id, Stage.TEST, 1, ok=False, clock=clock)]
    for run in runs:
        store.record_stage(run)
    assert list(store.stage_runs(job.id)) == runs
    assert store.stage_runs(424242) == []


def test_a_completed_stage_is_recorded_once(store: Registry) -> None:
    job = store.enqueue(make_fr(), REPO)
    store.record_stage(_run(job.id, Stage.CODE, 1, cost=1.0))
    store.record_stage(dataclasses.replace(_run(job.id, Stage.CODE, 1, cost=7.0),
                                           output={"other": True}))
    runs = store.stage_runs(job.id)
    assert len(runs) == 1 and runs[0].cost_usd == 1.0
    # Failed attempts of the same stage are all kept.
    store.record_stage(_run(job.id, Stage.TEST, 1, ok=False))
    store.record_stage(_run(job.id, Stage.TEST, 1, ok=False))
    assert len(store.stage_runs(job.id)) == 3


def test_costs_add_up(store: Registry, clock: FakeClock) -> None:
    job = store.enqueue(make_fr("FR-1"), REPO)
    other = store.enqueue(make_fr("FR-2"), REPO)
    store.record_stage(_run(job.id, Stage.PLAN, cost=0.25, clock=clock))
    since = clock.now() + timedelta(seconds=1)
    clock.advance(60)
    store.record_stage(_run(job.id, Stage.CODE, 1, ok=False, cost=1.5, clock=clock))
    store.record_stage(_run(other.id, Stage.PLAN, cost=2.0, clock=clock))
    assert store.job_cost(job.id) == pytest.approx(1.75)
    assert store.get(job.id).cost_usd == pytest.approx(1.75)
    assert store.cost_since(since) == pytest.approx(3.5)
    assert store.cost_since(clock.now() + timedelta(days=1)) == 0.0


def test_recording_for_a_missing_job_raises(store: Registry) -> None:
    with pytest.raises(NotFound):
        store.record_stage(_run(424242, Stage.PLAN))


# --------------------------------------------------------------------------- events, flags


def test_events_are_appended_and_read_after_an_id(store: Registry, clock: FakeClock) -> None:
    job = store.enqueue(make_fr(), REPO)
    store.add_event(job.id, "claimed", "by w1")
    clock.advance(1)
    store.add_event(None, "daemon", "started")
    store.add_event(job.id, "stage", "plan done")
    every = store.events()
    assert [(e.job_id, e.kind, e.message) for e in every] == [
        (job.id, "claimed", "by w1"), (None, "daemon", "started"), (job.id, "stage", "plan done")]
    assert every[1].at == clock.now() and every[1].at.tzinfo == UTC
    assert [e.kind for e in store.events(job.id)] == ["claimed", "stage"]
    assert [e.kind for e in store.events(after_id=every[0].id)] == ["daemon", "stage"]
    assert store.events(job.id, after_id=every[2].id) == []


def test_flags_set_overwrite_and_clear(store: Registry) -> None:
    assert store.get_flag("paused") is None
    store.set_flag("paused", "1")
    store.set_flag("note", "x")
    store.set_flag("paused", "yes")
    assert (store.get_flag("paused"), store.get_flag("note")) == ("yes", "x")
    store.set_flag("paused", None)
    store.set_flag("never-set", None)
    assert store.get_flag("paused") is None
    assert store.get_flag("note") == "x"


def test_changed_since_gives_the_jobs_written_from_that_moment(
    store: Registry, clock: FakeClock
) -> None:
    one = store.enqueue(make_fr("FR-1"), Path("/repo"))
    two = store.enqueue(make_fr("FR-2"), Path("/repo"))
    clock.advance(60)
    mark = clock.now()
    assert store.changed_since(mark) == []
    clock.advance(1)
    store.update(two.id, stage=Stage.PLAN)
    clock.advance(1)
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == one.id
    assert [job.id for job in store.changed_since(mark)] == [two.id, one.id]  # oldest first
    assert [job.id for job in store.changed_since(clock.now())] == [one.id]
