"""The operator's commands on the registry: pause/resume, retry, cancel (status: `opus.status`).

The CLI calls these; each opens nothing itself and raises `OpusError`s with advice:
`NotFound` for an FR or job that does not exist, `UsageError` for one in the wrong state
(both exit 2).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from opus.domain import Job, JobState
from opus.errors import NotFound, UsageError
from opus.seams import JobReader, JobStore

if TYPE_CHECKING:
    from opus.config import Settings

PAUSED_FLAG = "paused"


def set_paused(store: JobStore, paused: bool) -> None:
    """The global kill switch: while set, no daemon claims new work."""
    store.set_flag(PAUSED_FLAG, "1" if paused else None)


def is_paused(store: JobReader) -> bool:
    """Whether claiming is paused (`opus pause`)."""
    return store.get_flag(PAUSED_FLAG) == "1"


def find_job(store: JobStore, fr: str) -> Job:
    """The latest job of an FR id (case-insensitive) or of a job number."""
    job = store.latest_for_fr(fr) or store.latest_for_fr(fr.upper())
    if job is None and fr.isdigit():
        with contextlib.suppress(NotFound):
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
