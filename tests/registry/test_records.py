"""The registry's pure rules: what enqueue does, which fields may change."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.domain import Job, JobState, Priority, Stage
from opus.errors import StoreError
from opus.registry.records import encode_fields, enqueue_action, transition_values

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOB = Job(
    id=1, fr_id="FR-1", title="t", state=JobState.QUEUED, priority=Priority.MEDIUM,
    content_hash="h1", fr_path=Path("/v/FR-1.md"), repo=Path("/r"), base=None,
    created_at=NOW, updated_at=NOW,
)


def _job(state: JobState, *, started: bool = False) -> Job:
    return dataclasses.replace(JOB, state=state, started_at=NOW if started else None)


@pytest.mark.parametrize(
    ("state", "started", "content_hash", "action"),
    [
        (JobState.QUEUED, False, "h1", "keep"),
        (JobState.QUEUED, False, "h2", "update"),
        (JobState.QUEUED, True, "h2", "keep"),
        (JobState.RUNNING, True, "h2", "keep"),
        (JobState.AWAITING_REVIEW, True, "h2", "keep"),
        (JobState.DONE, True, "h1", "keep"),
        (JobState.DONE, True, "h2", "insert"),
        (JobState.FAILED, True, "h1", "insert"),
        (JobState.CANCELLED, False, "h2", "insert"),
    ],
)
def test_enqueue_action(state: JobState, started: bool, content_hash: str, action: str) -> None:
    assert enqueue_action(_job(state, started=started), content_hash) == action


def test_first_enqueue_inserts() -> None:
    assert enqueue_action(None, "h") == "insert"


def test_encode_fields_converts_and_refuses_unknown_names() -> None:
    assert encode_fields({"stage": Stage.CODE, "repo": Path("/x"), "spec": {"b": 1}}) == {
        "stage": "code", "repo": "/x", "spec": '{"b": 1}'}
    with pytest.raises(StoreError, match="worker"):
        encode_fields({"worker": "w"})


def test_transition_values() -> None:
    running = dataclasses.replace(_job(JobState.RUNNING, started=True), worker="w")
    assert transition_values(running, JobState.FAILED, NOW) == {
        "state": "failed", "updated_at": NOW, "worker": None, "lease_until": None,
        "finished_at": NOW}
    assert transition_values(_job(JobState.FAILED), JobState.QUEUED, NOW) == {
        "state": "queued", "updated_at": NOW, "finished_at": None, "error": None}
    assert transition_values(_job(JobState.QUEUED), JobState.RUNNING, NOW) == {
        "state": "running", "updated_at": NOW, "started_at": NOW}
