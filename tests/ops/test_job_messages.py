"""What a job process reports back keeps what the settler tells apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.daemon.workers import Finished, finished_from_dict, finished_to_dict
from opus.domain import Job, JobState, Priority
from opus.errors import ConfigError, EngineError, ModelNotFound, OpusError, StoreConflict
from opus.forges.http import RateLimited
from opus.pipeline.executor import Outcome

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOB = Job(id=7, fr_id="FR-7", title="t", state=JobState.RUNNING, priority=Priority.MEDIUM,
          content_hash="0" * 64, fr_path=Path("/srv/vault/FR-7.md"), repo=Path("/srv/repo"),
          base="main", created_at=NOW, updated_at=NOW)


@pytest.mark.parametrize(
    "error",
    [None, EngineError("529 overloaded"), RateLimited("rate limited", 42.0), OpusError("git"),
     StoreConflict("deadlock detected")],
)
def test_a_result_survives_the_trip_from_the_job_process(error: OpusError | None) -> None:
    sent = Finished(JOB, Outcome("stopped", "error"), error)
    got = finished_from_dict(JOB, json.loads(json.dumps(finished_to_dict(sent))))
    assert got.outcome == sent.outcome
    assert type(got.error) is type(error)
    assert str(got.error) == str(error)
    if isinstance(error, RateLimited):
        assert isinstance(got.error, RateLimited) and got.error.wait_s == 42.0


@pytest.mark.parametrize("error", [ModelNotFound("HTTP 404: model: x"), ConfigError("bad key")])
def test_an_error_no_retry_heals_stays_so_after_the_trip(error: OpusError) -> None:
    sent = Finished(JOB, Outcome("stopped", "error"), error)
    got = finished_from_dict(JOB, json.loads(json.dumps(finished_to_dict(sent))))
    assert got.error is not None and str(got.error) == str(error)
    assert not got.error.retryable, "the settler must fail the job, not retry it"
