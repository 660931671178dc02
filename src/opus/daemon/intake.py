"""Intake: the vault → registry direction, and job states back into the notes.

Each tick scans the vault (unchanged files come from the cache), marks unusable planned
notes `invalid`, enqueues the planned FRs whose dependencies are done (priority, then
age), and writes each job's state back into its note. Notes are written only when what
opus owns in them changed, so an idle vault is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from opus.domain import FR_STATUS_FOR_JOB, FeatureRequest, FRStatus, Job, JobState
from opus.errors import NoteError, OpusError
from opus.pipeline.context import PipelineContext
from opus.scheduling import schedule
from opus.vault import InvalidNote, NoteCache, ScanResult, scan_vault, write_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeReport:
    notes: int = 0
    invalid: int = 0
    enqueued: int = 0
    blocked: int = 0
    written: int = 0


class Intake:
    """Keeps the registry and the vault in step; owned by the `intake` role."""

    def __init__(self, ctx: PipelineContext) -> None:
        self.ctx = ctx
        self.cache = NoteCache()
        self._synced: dict[str, tuple[int, str]] = {}
        self._vault_warned = False

    def __repr__(self) -> str:
        return f"Intake(cached={len(self.cache)}, synced={len(self._synced)})"

    def tick(self) -> IntakeReport:
        settings = self.ctx.settings
        try:
            scan = scan_vault(
                settings.vault_path, default_repo=settings.default_repo, cache=self.cache
            )
        except NoteError as exc:
            if not self._vault_warned:
                log.error("%s", exc)
                self._vault_warned = True
            return IntakeReport()
        self._vault_warned = False
        invalid = self._flag_invalid(scan.invalid)
        enqueued, blocked = self._enqueue(scan)
        written = self._write_back(scan.valid)
        return IntakeReport(len(scan.valid) + len(scan.invalid), invalid, enqueued, blocked,
                            written + invalid)

    # ------------------------------------------------------------------ invalid notes

    def _flag_invalid(self, notes: Iterable[InvalidNote]) -> int:
        flagged = 0
        for note in notes:
            if note.should_flag and self._write(
                note.path, {"status": FRStatus.INVALID.value, "error": note.error}
            ):
                log.warning("%s is invalid: %s", note.path, note.error)
                flagged += 1
        return flagged

    # ------------------------------------------------------------------ enqueue

    def _enqueue(self, scan: ScanResult) -> tuple[int, int]:
        plan = schedule(scan.planned, scan.statuses, ages=_ages(scan.planned))
        for fr in plan.ready:
            self._enqueue_one(fr)
        in_progress = [fr for fr in scan.valid if fr.status is FRStatus.IN_PROGRESS]
        latest = self.ctx.store.latest_for_frs(fr.id for fr in in_progress)
        for fr in in_progress:
            self._refresh_queued(fr, latest.get(fr.id))
        return len(plan.ready), len(plan.blocked)

    def _enqueue_one(self, fr: FeatureRequest) -> None:
        store = self.ctx.store
        if fr.repo is None:  # the scan already made such a note invalid
            return
        try:
            job = store.enqueue(fr, fr.repo)
            if job.state in (JobState.FAILED, JobState.CANCELLED):
                # The user set `status: planned` again on an unchanged note: re-queue it.
                from opus.control import retry

                job = retry(store, str(job.id))
        except OpusError as exc:
            log.error("could not enqueue %s: %s", fr.id, exc)
            return
        store.add_event(job.id, "enqueued", f"{fr.id} from {fr.path}")
        self._sync(fr, job)

    def _refresh_queued(self, fr: FeatureRequest, job: Job | None) -> None:
        """A note edited while its job still waits updates the job (same id, new content)."""
        if job is None or job.state is not JobState.QUEUED or job.started_at is not None:
            return
        if job.content_hash != fr.content_hash and fr.repo is not None:
            self.ctx.store.enqueue(fr, fr.repo)

    # ------------------------------------------------------------------ write-back

    def _write_back(self, frs: Iterable[FeatureRequest]) -> int:
        tracked = [fr for fr in frs if fr.status not in (FRStatus.DRAFT, FRStatus.PLANNED)]
        latest = self.ctx.store.latest_for_frs(fr.id for fr in tracked)
        written = 0
        for fr in tracked:
            job = latest.get(fr.id)
            if job is not None:
                written += self._sync(fr, job)
        return written

    def _sync(self, fr: FeatureRequest, job: Job) -> int:
        status = FR_STATUS_FOR_JOB[job.state]
        stamp = (job.id, f"{job.state.value}|{job.stage}|{job.branch}|{job.pr_url}|{job.error}")
        if self._synced.get(fr.id) == stamp:
            return 0
        if fr.id not in self._synced and fr.status is status and fr.job == job.id:
            self._synced[fr.id] = stamp  # already right on disk (e.g. after a restart)
            return 0
        fields = {
            "status": status.value,
            "job": job.id,
            "stage": job.stage.value if job.stage else None,
            "branch": job.branch,
            "pr": job.pr_url,
            "error": _one_line(job.error) if job.state.ended or job.error else None,
        }
        if self._write(fr.path, fields):
            self._synced[fr.id] = stamp
            return 1
        return 0

    def _write(self, path: Path, fields: Mapping[str, object | None]) -> bool:
        settings = self.ctx.settings
        fields = {**fields, "updated": self.ctx.clock.now().isoformat(timespec="seconds")}
        try:
            write_fields(
                path,
                fields,
                move=settings.vault.move_notes,
                vault_root=settings.vault_path,
            )
        except OpusError as exc:
            log.error("could not update %s: %s", path, exc)
            return False
        return True


def _ages(frs: Iterable[FeatureRequest]) -> dict[str, float]:
    ages: dict[str, float] = {}
    for fr in frs:
        try:
            ages[fr.id] = fr.path.stat().st_mtime
        except OSError:
            continue
    return ages


def _one_line(text: str | None) -> str | None:
    if not text:
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:300] or None
