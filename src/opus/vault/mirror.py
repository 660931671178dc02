"""What a note shows of its job: the mapping job state → note keys (SPEC §2).

| job state | `status:` | `stage:` |
| --- | --- | --- |
| queued | `in-progress` | `queued`, or `waiting: <reason>`: paused, daily budget, breaker open |
| running | `in-progress` | the running stage: `plan`, `code`, `test`, `review`, `deliver` |
| waiting_input | `in-progress` | `needs-input` (the question or plan note beside it links the FR) |
| awaiting_review | `review` | the last stage (`deliver`); `ready` once approved and green |
| done | `done` | the last stage |
| failed | `failed` | the stage it failed in; `error:` says why |
| cancelled | `cancelled` | the stage it stopped in; `error:` says why |

`job`, `branch` and `pr` always mirror the job; `error` is one line naming the cause,
pointing to `opus logs <FR>` for the rest.
"""

from __future__ import annotations

from opus.delivery.reactions import is_ready
from opus.domain import FR_STATUS_FOR_JOB, FRStatus, Job, JobState

NOTE_OUTCOME = "note"
"""Key in a job's spec: the end state opus managed to write into the FR's note."""
ERROR_CHARS = 300


def note_fields(job: Job, *, waiting: str | None = None) -> dict[str, object | None]:
    """The keys opus writes into the FR note of `job` (`updated` and `error` aside)."""
    status = FR_STATUS_FOR_JOB.get(job.state, FRStatus.IN_PROGRESS)
    return {
        "status": status.value,
        "job": job.id,
        "stage": stage_text(job, waiting=waiting),
        "branch": job.branch,
        "pr": job.pr_url,
    }



def stage_text(job: Job, *, waiting: str | None = None) -> str | None:
    """`waiting` says why a queued job cannot be claimed now (None: it can)."""
    if job.state is JobState.QUEUED:
        return f"waiting: {waiting}" if waiting else "queued"
    if job.state is JobState.WAITING_INPUT:
        return "needs-input"
    if job.state is JobState.AWAITING_REVIEW and is_ready(job.spec):
        return "ready"
    return job.stage.value if job.stage else None


def error_line(job: Job) -> str | None:
    """The job's error as one line of at most ~300 characters, pointing to the full text."""
    if not job.error:
        return None
    return summarize(job.error, job.fr_id)


def summarize(text: str, fr_id: str) -> str | None:
    """`text` on one line: the cause, cut at ~300 characters, then where the rest is."""
    line = " ".join(text.split())
    if not line:
        return None
    if len(line) > ERROR_CHARS:
        line = line[: ERROR_CHARS - 1].rstrip() + "…"
    return f"{line} (full report: `opus logs {fr_id}`)"
