"""Rows to frozen domain records and back, and the pure rules the registry applies.

Nothing here does I/O: the store reads a row, asks these functions what to do, and
writes what they return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from opus.domain import (
    DaemonRecord,
    Event,
    FeatureRequest,
    Job,
    JobState,
    Priority,
    Stage,
    StageRun,
    Usage,
)
from opus.errors import StoreError

# Fields `Registry.update` (and `transition`) may change. The state, the worker and the
# lease change only through claim/transition/heartbeat/release, which check them.
UPDATABLE = frozenset(
    {"stage", "iteration", "branch", "pr_url", "error", "title", "base", "spec",
     "fr_path", "repo"}
)

EnqueueAction = Literal["keep", "update", "insert"]


def enqueue_action(latest: Job | None, content_hash: str) -> EnqueueAction:
    """What `enqueue` does with a planned note, given the FR's most recent job.

    keep: the job already covers this content (same hash, not failed/cancelled), or it
    was claimed already and must not change under its worker.  update: the note was
    edited while its job waits unclaimed.  insert: first time, or a re-planned note after
    failed/cancelled, or new content after done.
    """
    if latest is None:
        return "insert"
    if latest.state in (JobState.FAILED, JobState.CANCELLED):
        return "insert"
    if latest.content_hash == content_hash:
        return "keep"
    if latest.state is JobState.DONE:
        return "insert"
    if latest.state is JobState.QUEUED and latest.started_at is None:
        return "update"
    return "keep"


def spec_for(fr: FeatureRequest) -> dict[str, Any]:
    """The FR fields the pipeline needs, as stored in `jobs.spec`."""
    return {
        "body": fr.body,
        "test_command": fr.test_command,
        "setup": fr.setup,
        "allowed_paths": list(fr.allowed_paths),
        "budget_usd": fr.budget_usd,
        "budget_minutes": fr.budget_minutes,
        "depends_on": list(fr.depends_on),
        "open_questions": fr.open_questions,
        "approve_plan": fr.approve_plan,
    }


def fr_columns(fr: FeatureRequest, repo: Path) -> dict[str, Any]:
    """The job columns that come from the note (written on insert and on update)."""
    return {
        "title": fr.title,
        "priority": fr.priority.value,
        "priority_rank": fr.priority.rank,
        "content_hash": fr.content_hash,
        "fr_path": str(fr.path),
        "repo": str(repo),
        "base": fr.base,
        "spec": json.dumps(spec_for(fr), sort_keys=True),
    }


def encode_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values for `fields`; unknown names raise `StoreError`."""
    unknown = sorted(set(fields) - UPDATABLE)
    if unknown:
        raise StoreError(
            f"cannot update job field(s) {', '.join(unknown)}: "
            f"updatable fields are {', '.join(sorted(UPDATABLE))}"
        )
    return {name: _encode(name, value) for name, value in fields.items()}


def _encode(name: str, value: Any) -> Any:
    if name == "spec":
        return json.dumps(dict(value or {}), sort_keys=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """A frozen `Job` from a `jobs` row mapping."""
    return Job(
        id=row["id"],
        fr_id=row["fr_id"],
        title=row["title"],
        state=JobState(row["state"]),
        priority=Priority(row["priority"]),
        content_hash=row["content_hash"],
        fr_path=Path(row["fr_path"]),
        repo=Path(row["repo"]),
        base=row["base"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stage=Stage(row["stage"]) if row["stage"] else None,
        iteration=row["iteration"],
        branch=row["branch"],
        pr_url=row["pr_url"],
        error=row["error"],
        cost_usd=float(row["cost_usd"]),
        worker=row["worker"],
        lease_until=row["lease_until"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        spec=json.loads(row["spec"] or "{}"),
    )


def stage_run_columns(run: StageRun) -> dict[str, Any]:
    """The `stage_runs` row for a checkpoint."""
    return {
        "job_id": run.job_id,
        "stage": run.stage.value,
        "iteration": run.iteration,
        "ok": run.ok,
        "output": json.dumps(run.output, sort_keys=True, default=str),
        "input_tokens": run.usage.input_tokens,
        "output_tokens": run.usage.output_tokens,
        "cache_read_tokens": run.usage.cache_read_tokens,
        "cache_write_tokens": run.usage.cache_write_tokens,
        "cost_usd": run.cost_usd,
        "prompt_sha256": run.prompt_sha256,
        "commit_sha": run.commit,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def stage_run_from_row(row: Mapping[Any, Any]) -> StageRun:
    """A frozen `StageRun` from a `stage_runs` row mapping."""
    return StageRun(
        job_id=row["job_id"],
        stage=Stage(row["stage"]),
        iteration=row["iteration"],
        ok=bool(row["ok"]),
        output=json.loads(row["output"]),
        usage=Usage(
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_tokens"],
            row["cache_write_tokens"],
        ),
        cost_usd=float(row["cost_usd"]),
        prompt_sha256=row["prompt_sha256"],
        commit=row["commit_sha"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def event_from_row(row: Mapping[Any, Any]) -> Event:
    """A frozen `Event` from an `events` row mapping."""
    return Event(
        id=row["id"], job_id=row["job_id"], at=row["at"], kind=row["kind"],
        message=row["message"],
    )


def transition_values(job: Job, to: JobState, now: Any) -> dict[str, Any]:
    """The columns a legal transition of `job` to `to` sets besides the caller's fields."""
    values: dict[str, Any] = {"state": to.value, "updated_at": now}
    if job.state is JobState.RUNNING and to is not JobState.RUNNING:
        values.update(worker=None, lease_until=None)
    if to is JobState.RUNNING and job.started_at is None:
        values["started_at"] = now
    if to.ended:
        values["finished_at"] = now
    elif job.state.ended:
        # Re-queued after failing or being cancelled: the old outcome no longer applies.
        values.update(finished_at=None, error=None)
    return values


def daemon_columns(record: DaemonRecord) -> dict[str, Any]:
    """The `daemons` row of a daemon's presence record."""
    return {
        "id": record.id,
        "host": record.host,
        "pid": record.pid,
        "role": record.role,
        "version": record.version,
        "started_at": record.started_at,
        "beat_at": record.beat_at,
        "beat_every_s": record.beat_every_s,
        "info": json.dumps(record.info, sort_keys=True, default=str),
    }


def daemon_from_row(row: Mapping[Any, Any]) -> DaemonRecord:
    """A frozen `DaemonRecord` from a `daemons` row mapping."""
    return DaemonRecord(
        id=row["id"], host=row["host"], pid=row["pid"], role=row["role"],
        version=row["version"], started_at=row["started_at"], beat_at=row["beat_at"],
        beat_every_s=float(row["beat_every_s"]), info=json.loads(row["info"] or "{}"),
    )
