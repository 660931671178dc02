"""Intake: the vault → registry direction, and job states back into the notes.

Each tick scans the vault (unchanged files come from the cache) and, for every FR note
that has been unchanged for `vault.settle_s` (the user has finished typing): marks an
unusable planned note `invalid`, enqueues the planned FRs whose dependencies are done
(priority, then age), and writes each job's state back into its note. Notes are written
only when what opus owns in them changed, so an idle vault is never touched; notes that
are not FRs are never touched at all (SPEC §1, designs/vault.md).

Never a loop: a write-back that fails is not tried again until the note or the job
changes, and a job's end is re-run from a `planned` note only when the note showed that
end (the outcome recorded in the job's spec under `note`) and the user planned it again.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opus.conversation.sync import ConversationSync
from opus.daemon import heap
from opus.daemon.problem_log import ProblemLog
from opus.domain import FeatureRequest, FRStatus, Job, JobState
from opus.errors import NoteError, OpusError
from opus.pipeline.context import PipelineContext
from opus.scheduling import Blocked, schedule
from opus.vault import InvalidNote, write_fields
from opus.vault.index import FRState, VaultIndex
from opus.vault.mirror import NOTE_OUTCOME, error_line, note_fields
from opus.vault.parse_cache import CACHE_NAME
from opus.vault.problems import vault_relative
from opus.vault.write import in_another_status_folder

log = logging.getLogger(__name__)

WRITE_RETRY_S = 300.0
CHANGE_MARGIN_S = 5.0
"""A tick mirrors the jobs changed since the previous tick began, less this margin (a
write stamped just before it committed, another host's clock slightly behind); the full
tick every `FULL_SCAN_S` mirrors every job whatever the clocks say."""
STOP_SAVE_SHARE = 30
"""At a stop, the parse cache is rewritten when more than 1/30 of the notes changed
since it was written (`persist`)."""
FULL_SCAN_S = 300.0
"""With a live watcher, the whole vault is walked only at start and this often (a safety
net for changes the watcher missed, e.g. an overflowed event queue); otherwise every
tick. A renamed folder is an event: its subtree is walked at once (`VaultIndex.refresh`)."""


@dataclass(frozen=True)
class IntakeReport:
    notes: int = 0
    invalid: int = 0
    enqueued: int = 0
    blocked: int = 0
    written: int = 0
    settling: int = 0
    """FR notes changed less than `vault.settle_s` ago, left for a later tick."""


class Intake:
    """Keeps the registry and the vault in step; owned by the `intake` role.

    `settle=False` acts on notes at once (`opus run --once`, tests): nobody is typing.
    """

    def __init__(self, ctx: PipelineContext, *, settle: bool = False) -> None:
        self.ctx = ctx
        self.settle = settle
        self.index = self._new_index()
        self.watching: Callable[[], bool] = lambda: False
        """True while a file watcher feeds `notice`; then a tick re-reads changed notes only."""
        self._pending: set[Path] = set()
        self._lock = threading.Lock()
        self._full_at: float | None = None
        self.full_scan_s = FULL_SCAN_S
        self._synced: dict[str, tuple[int, str]] = {}
        """FR id → (job id, the fields last written or found in its note)."""
        self._failed: dict[Path, tuple[object, float, str]] = {}
        """Note → (version, when, error) of its last failed write: not retried until the
        note changes (or `WRITE_RETRY_S` passed, e.g. after a permission fix)."""
        self.problems = ProblemLog(lambda: self.ctx.settings)
        self._vault_warned = False
        self._paused_now: bool | None = None
        self._blockers: dict[Path, str | None] = {}
        self.conversation = ConversationSync(ctx)
        """Question and plan notes of the jobs waiting for a person."""
        self.claim_blocker: Callable[[Job], str | None] | None = None
        """Set by the loop: why a queued job cannot be claimed now (budget, breaker)."""
        self.wait_key: Callable[[], object] | None = None
        """Set by the loop: a value that changes when `claim_blocker` may answer otherwise
        (budget spent, breakers open); a change re-mirrors every queued job's note."""
        self._last_waiting: object = None
        self._settling: set[Path] = set()
        self._ticked_at: datetime | None = None
        self.due_in_s: float | None = None
        """Seconds until a settling note is due (the loop sleeps no longer); None if none."""
        self.blocked: tuple[Blocked, ...] = ()
        """Planned FRs the last tick left waiting on their dependencies (for `opus status`)."""
        self._walked = False
        """The last tick walked the whole vault: `persist` writes the parse cache."""

    def __repr__(self) -> str:
        return f"Intake(frs={len(self.index)}, synced={len(self._synced)})"

    def notice(self, paths: Iterable[Path]) -> None:
        """Paths the watcher saw change (any thread): the next tick re-reads them."""
        with self._lock:
            self._pending.update(Path(path) for path in paths)

    def _new_index(self) -> VaultIndex:
        settings = self.ctx.settings
        return VaultIndex(
            settings.vault_path,
            default_repo=settings.default_repo,
            features_dir=settings.vault.features_dir,
            id_pattern=settings.vault.id_pattern,
            finish_moves=True,
            cache_file=settings.state_dir / CACHE_NAME,
        )

    def persist(self, *, stopping: bool = False) -> None:
        """Store the index's verdicts for the next start (`opus.vault.parse_cache`), when
        they changed: after a whole-vault walk (at start, every `FULL_SCAN_S`) — called
        by the loop after it claimed, off the pickup's path — and at a stop, when more
        notes changed since than the write costs to spare (a note costs ~1/30 to write of
        what it costs to parse: `run --once` does not rewrite the file for its one note)."""
        if stopping:
            self.index.save_cache(least=max(1, self.index.note_count // STOP_SAVE_SHARE))
        elif self._walked:
            self._walked = False
            self.index.save_cache()

    def _refresh(self) -> tuple[set[Path], bool]:
        """The paths whose verdict changed, and whether the whole vault was walked.

        Changed notes only while a watcher reports them; the whole vault at start, every
        `FULL_SCAN_S`, after a reload, and on every tick without a watcher."""
        settings = self.ctx.settings
        wanted = (settings.vault_path, settings.default_repo, settings.vault.features_dir,
                  settings.vault.id_pattern)
        index = self.index
        if wanted != (index.root, index.default_repo, index.features_dir, index.id_pattern):
            self.index, self._full_at = self._new_index(), None  # a reload changed the vault
        with self._lock:
            pending, self._pending = self._pending, set()
        mono = time.monotonic()
        due = self._full_at is None or mono - self._full_at >= self.full_scan_s
        if due or not self.watching():
            index, start = self.index, time.perf_counter()
            misses, cached = index.misses, index.cached
            changed = index.refresh_all()
            if self._full_at is None:
                log.info("vault: %d notes walked in %.2f s (%d parsed, %d from the parse "
                         "cache)", index.note_count, time.perf_counter() - start,
                         index.misses - misses, index.cached - cached)
            self._full_at = mono if due else self._full_at
            self._walked = due
            return changed, True
        return self.index.refresh(pending), False

    def tick(self) -> IntakeReport:
        self._paused_now = None
        self._blockers = {}
        started = self.ctx.clock.now()
        jobs_since = (self._ticked_at or started) - timedelta(seconds=CHANGE_MARGIN_S)
        try:
            changed, full = self._refresh()
        except NoteError as exc:
            if not self._vault_warned:
                log.error("%s", exc)
                self._vault_warned = True
            return IntakeReport()
        self._vault_warned = False
        self._ticked_at = started
        index = self.index
        if full:
            considered = set(index.fr_paths())
            self.problems.restart()
        else:
            considered = changed | self._settling | self._retry_due()
        for path in changed:
            self.problems.changed(path, gone=not index.is_fr(path))
        stable = self._stable(considered)
        notes = [note for path in sorted(stable) if (note := index.entry(path)) is not None]
        invalid = self._flag_invalid(n for n in notes if isinstance(n, InvalidNote))
        # After the write-backs: what is remembered is the bytes a restart will find.
        self.problems.record({path: index.entry(path) for path in stable})
        valid = [n for n in notes if not isinstance(n, InvalidNote)]
        enqueued, blocked = self._enqueue(valid)
        written = self._write_back(valid, full=full, since=jobs_since)
        self.conversation.tick(index.paths)
        if full:
            heap.trim()  # the walk's transients: not kept resident while idle
        return IntakeReport(len(index), invalid, enqueued, blocked, written + invalid,
                            len(self._settling))

    def _retry_due(self) -> set[Path]:
        """Notes whose write-back failed long enough ago to try again (a permission fix)."""
        now = time.monotonic()
        return {path for path, (_v, when, _e) in self._failed.items()
                if now - when >= WRITE_RETRY_S}

    # ------------------------------------------------------------------ settling

    def _stable(self, paths: Iterable[Path]) -> set[Path]:
        """Of `paths` (FR notes), those unchanged for `vault.settle_s`; the others are
        looked at again on later ticks until they settle."""
        settle_s = self.ctx.settings.vault.settle_s if self.settle else 0.0
        now, mono = time.time(), time.monotonic()
        stable: set[Path] = set()
        self._settling = set()
        due: list[float] = []
        for path in paths:
            if not self.index.is_fr(path):
                continue
            version = self.index.version(path)
            if version is None or version.stable(settle_s, now=now, mono=mono):
                stable.add(path)
            else:
                self._settling.add(path)
                due.append(version.due_in(settle_s, now=now, mono=mono))
        self.due_in_s = min(due) if due else None
        return stable

    def _version(self, path: Path) -> object:
        version = self.index.version(path)
        return None if version is None else version.key

    # ------------------------------------------------------------------ invalid notes

    def _flag_invalid(self, notes: Iterable[InvalidNote]) -> int:
        flagged = 0
        for note in notes:
            # An invalid note is never moved: it stays where the user is editing it.
            fields = {"status": FRStatus.INVALID.value, "error": note.error}
            if note.should_flag and self._write(note.path, fields, move=False):
                self.problems.flagged(note.path)
                flagged += 1
        return flagged

    # ------------------------------------------------------------------ enqueue

    def _enqueue(self, changed: Sequence[FeatureRequest | FRState]) -> tuple[int, int]:
        """Enqueue the settled planned FRs that are ready (all of them, every tick: their
        number, not the vault's size); update the queued jobs of changed notes."""
        planned = [fr for fr in self.index.planned() if self._settled(fr.path)]
        plan = schedule(planned, self.index.statuses, ages=_ages(planned))
        self.blocked = plan.blocked
        moving = [fr for fr in changed
                  if isinstance(fr, FeatureRequest) and fr.status is FRStatus.IN_PROGRESS]
        latest = self.ctx.store.latest_for_frs(fr.id for fr in (*plan.ready, *moving))
        enqueued = sum(self._enqueue_one(fr, latest.get(fr.id)) for fr in plan.ready)
        for fr in moving:
            job = latest.get(fr.id)
            if job is not None:
                self._refresh_queued(fr, job)
        return enqueued, len(plan.blocked)

    def _settled(self, path: Path) -> bool:
        return path not in self._settling

    def _enqueue_one(self, fr: FeatureRequest, last: Job | None) -> int:
        store = self.ctx.store
        if fr.repo is None:  # the scan already made such a note invalid
            return 0
        try:
            if last is not None and last.content_hash == fr.content_hash and last.state.ended:
                job = self._replanned(fr, last)
                if job is None:
                    return 0
            else:
                job = store.enqueue(fr, fr.repo)
                if last is not None and job.id == last.id and job.state is last.state:
                    return self._sync(fr, job)  # nothing new: the note is just behind
                store.add_event(job.id, "enqueued", f"{fr.id} from {fr.path}")
        except OpusError as exc:
            log.error("could not enqueue %s: %s", fr.id, exc)
            return 0
        self._sync(fr, job)
        return 1

    def _replanned(self, fr: FeatureRequest, job: Job) -> Job | None:
        """The job to run for a planned note whose content a job already ended with.

        Re-run only when the note showed that end and the user set `planned` again;
        if opus never managed to write the end into the note, the note is merely stale:
        retrying would run the same content again every tick (SPEC §1).
        """
        if job.state is JobState.DONE:
            return None  # same content as a delivered job: nothing new to do
        if job.spec.get(NOTE_OUTCOME) != job.state.value or fr.job != job.id:
            self._sync(fr, job)
            return None
        from opus.control import retry

        job = retry(self.ctx.store, str(job.id))
        spec = {k: v for k, v in job.spec.items() if k != NOTE_OUTCOME}
        return self.ctx.store.update(job.id, spec=spec)

    def _refresh_queued(self, fr: FeatureRequest, job: Job) -> None:
        """A note edited while its job still waits updates the job (same id, new content)."""
        if job.state is not JobState.QUEUED or job.started_at is not None:
            return
        if job.content_hash != fr.content_hash and fr.repo is not None:
            self.ctx.store.enqueue(fr, fr.repo)

    # ------------------------------------------------------------------ write-back

    def _write_back(
        self, changed: Sequence[FeatureRequest | FRState], *, full: bool, since: datetime
    ) -> int:
        """Write job states into notes: for the notes that changed, and for the notes of
        jobs that changed in the registry since the last tick (or, when waiting reasons
        changed, of every queued job); on a full tick, for every tracked note."""
        tracked = {fr.id: fr for fr in changed if _mirrored(fr)}
        if full:
            self._last_waiting = self._waiting_key()
        else:
            for fr_id in self._jobs_moved(since):
                fr = self.index.entry_by_id(fr_id)
                if fr is not None and self._settled(fr.path) and _mirrored(fr):
                    tracked.setdefault(fr_id, fr)
        latest = self.ctx.store.latest_for_frs(tracked)
        written = 0
        for fr_id, fr in sorted(tracked.items()):
            job = latest.get(fr_id)
            if job is not None:
                written += self._sync(fr, job)
        return written

    def _jobs_moved(self, since: datetime) -> set[str]:
        """FR ids of the jobs changed at or after `since` (one indexed query), and of every
        queued job when why they wait (pause, budget, breaker) changed."""
        ids = {job.fr_id for job in self.ctx.store.changed_since(since)}
        waiting = self._waiting_key()
        if waiting != self._last_waiting:
            self._last_waiting = waiting
            ids |= {job.fr_id for job in self.ctx.store.jobs([JobState.QUEUED])}
        return ids

    def _sync(self, fr: FeatureRequest | FRState, job: Job) -> int:
        """Write the job's state into its note (SPEC §2, `opus.vault.mirror`)."""
        fields = {**note_fields(job, waiting=self._waiting(job)), "error": error_line(job)}
        # Interned: the done FRs of a large vault share a handful of texts.
        stamp = (job.id, sys.intern("|".join(f"{key}={value}" for key, value in fields.items())))
        if self._synced.get(fr.id) == stamp:
            return 0
        status = FRStatus(str(fields["status"]))
        settings = self.ctx.settings
        # A stop between writing a status and moving the note leaves it in the folder of
        # the status before; the next sync finishes the move.
        astray = settings.vault.move_notes and in_another_status_folder(
            fr.path, status, settings.vault_path, settings.vault.features_dir)
        if (fr.id not in self._synced and fr.status is status and fr.job == job.id
                and not astray):
            self._synced[fr.id] = stamp  # already right on disk (e.g. after a restart)
            self._record_outcome(job)
            return 0
        move = settings.vault.move_notes and (fr.status is not status or astray)
        if not self._write(fr.path, fields, move=move):
            return 0
        self._synced[fr.id] = stamp
        self._record_outcome(job)
        return 1

    def _record_outcome(self, job: Job) -> None:
        """Remember that the note shows how the job ended (a re-plan may then re-run it)."""
        if job.state.ended and job.spec.get(NOTE_OUTCOME) != job.state.value:
            try:
                self.ctx.store.update(job.id, spec={**job.spec, NOTE_OUTCOME: job.state.value})
            except OpusError as exc:
                log.error("could not record that %s's note shows its end: %s", job.fr_id, exc)

    def _waiting_key(self) -> object:
        return self._paused(), self.wait_key() if self.wait_key is not None else None

    def _waiting(self, job: Job) -> str | None:
        """Why a queued job is not claimed now: paused, or what `claim_blocker` says."""
        if job.state is not JobState.QUEUED:
            return None
        if self._paused():
            return "paused"
        if self.claim_blocker is None:
            return None
        if job.repo not in self._blockers:  # once per repo per tick, not per queued note
            self._blockers[job.repo] = self.claim_blocker(job)
        return self._blockers[job.repo]

    def _paused(self) -> bool:
        """Read once per tick: one read per queued note would be a transaction each."""
        if self._paused_now is None:
            from opus.control import is_paused

            self._paused_now = is_paused(self.ctx.store)
        return self._paused_now

    def _write(self, path: Path, fields: Mapping[str, object | None], *, move: bool) -> bool:
        """Write `fields` into the note; a failure is logged once and not retried until
        the note changes (or `WRITE_RETRY_S` passed)."""
        settings = self.ctx.settings
        version = self._version(path)
        failed = self._failed.get(path)
        recent = failed is not None and time.monotonic() - failed[1] < WRITE_RETRY_S
        if failed is not None and failed[0] == version and recent:
            return False
        fields = {**fields, "updated": self.ctx.clock.now().isoformat(timespec="seconds")}
        try:
            moved = write_fields(
                path,
                fields,
                move=move,
                vault_root=settings.vault_path,
                features_dir=settings.vault.features_dir,
            )
            self.notice({path, moved})  # seen at once, whenever the watcher reports it
        except OpusError as exc:
            self._failed[path] = (version, time.monotonic(), str(exc))
            if failed is None or failed[2] != str(exc):
                rel = vault_relative(path, settings.vault_path)
                log.error("could not update %s (not retried until the note changes): %s",
                          rel, exc)
            return False
        self._failed.pop(path, None)
        return True


def _mirrored(fr: FeatureRequest | FRState) -> bool:
    """A note that shows its job's state (a draft has none; a planned one is enqueued)."""
    return fr.status not in (FRStatus.DRAFT, FRStatus.PLANNED)


def _ages(frs: Iterable[FeatureRequest]) -> dict[str, float]:
    ages: dict[str, float] = {}
    for fr in frs:
        try:
            ages[fr.id] = fr.path.stat().st_mtime
        except OSError:
            continue
    return ages


