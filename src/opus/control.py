"""The operator's commands on the registry: status, pause/resume, retry, cancel.

The CLI calls these; each opens nothing itself and raises `OpusError`s with advice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from opus.config import Settings
from opus.domain import Job, JobState
from opus.errors import NotFound, UsageError
from opus.seams import JobReader, JobStore

PAUSED_FLAG = "paused"


@dataclass(frozen=True)
class StatusRow:
    job: int
    fr: str
    title: str
    state: str
    stage: str | None
    iteration: int
    elapsed_s: float | None
    cost_usd: float
    pr: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status_rows(store: JobReader, now: datetime) -> list[StatusRow]:
    """One row per job, newest first."""
    jobs = sorted(store.jobs(), key=lambda job: job.id, reverse=True)
    return [_row(job, now) for job in jobs]


def _row(job: Job, now: datetime) -> StatusRow:
    elapsed = None
    if job.started_at is not None:
        end = job.finished_at or (now if job.state is JobState.RUNNING else job.updated_at)
        elapsed = max(0.0, (end - job.started_at).total_seconds())
    return StatusRow(
        job=job.id,
        fr=job.fr_id,
        title=job.title,
        state=job.state.value,
        stage=job.stage.value if job.stage else None,
        iteration=job.iteration,
        elapsed_s=elapsed,
        cost_usd=round(job.cost_usd, 4),
        pr=job.pr_url,
        error=job.error,
    )


def render_status(rows: Sequence[StatusRow], *, paused: bool) -> str:
    """A fixed-width table for humans."""
    header = ("JOB", "FR", "STATE", "STAGE", "ROUND", "ELAPSED", "COST", "PR / ERROR")
    lines = [header]
    for row in rows:
        tail = row.pr or (row.error or "").splitlines()[0][:60] if (row.pr or row.error) else ""
        lines.append((
            str(row.job), row.fr, row.state, row.stage or "-", str(row.iteration),
            _duration(row.elapsed_s), f"${row.cost_usd:.2f}", tail,
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1]
           for line in lines]
    if not rows:
        out.append("no jobs yet: set `status: planned` on a note and run `opus run`")
    if paused:
        out.append("claiming is PAUSED (`opus resume` to restart)")
    return "\n".join(line.rstrip() for line in out)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def set_paused(store: JobStore, paused: bool) -> None:
    store.set_flag(PAUSED_FLAG, "1" if paused else None)


def is_paused(store: JobReader) -> bool:
    return store.get_flag(PAUSED_FLAG) == "1"


def find_job(store: JobStore, fr: str) -> Job:
    """The latest job of an FR id (case-insensitive) or of a job number."""
    job = store.latest_for_fr(fr) or store.latest_for_fr(fr.upper())
    if job is None and fr.isdigit():
        job = store.get(int(fr))
    if job is None:
        raise NotFound(f"no job for {fr!r}; `opus status` lists the jobs")
    return job


def retry(store: JobStore, fr: str) -> Job:
    """Re-queue a failed or cancelled job; it resumes from its last checkpoint.

    A job that used up its rounds gets a fresh set of `pipeline.max_iterations`.
    """
    job = find_job(store, fr)
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise UsageError(
            f"{job.fr_id} is {job.state.value}; only failed or cancelled jobs can be retried"
        )
    spec = {k: v for k, v in job.spec.items() if k not in ("stuck_retries", "infra_failures")}
    spec["extra_rounds"] = job.iteration
    store.add_event(job.id, "retry", "re-queued by `opus retry`")
    return store.transition(job.id, JobState.QUEUED, error=None, spec=spec)


def cancel(store: JobStore, settings: Settings, fr: str) -> Job:
    """Stop a job and clean its worktree (a running one stops at its next checkpoint)."""
    job = find_job(store, fr)
    if job.state.ended:
        raise UsageError(f"{job.fr_id} is already {job.state.value}")
    was_running = job.state is JobState.RUNNING
    job = store.transition(job.id, JobState.CANCELLED, error="cancelled by `opus cancel`")
    store.add_event(job.id, "cancelled", "cancelled by `opus cancel`")
    if not was_running:
        remove_worktree(settings, job)
    return job


def remove_worktree(settings: Settings, job: Job) -> None:
    """Remove the job's worktree if there is one; the branch stays."""
    from opus.pipeline.worktree import remove_worktree_at

    remove_worktree_at(job.repo, settings.state_dir / "worktrees" / f"job-{job.id}")
