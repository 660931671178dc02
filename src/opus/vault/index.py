"""The vault's notes kept current from the paths that changed (incremental intake).

`VaultIndex` holds every note's verdict and the maps the vault-wide rules need — which
paths hold each id and each file stem, which notes depend on each name, the planned
FRs' dependency graph — so a change re-checks only the notes it can affect (`rules`).

`refresh(paths)` returns the paths whose verdict changed, so a caller (the daemon's
intake) does work in proportion to the change, not to the vault. `result()` gives the
whole `ScanResult`, equal to what `scan_vault` computes from scratch (property-tested).

What it keeps per note is sized for a large vault, most of which is done FRs, ideas and
meeting notes: the note's path as text relative to the features folder and its stat key
in arrays (`NoteTable`); for a note that is not an FR, the reason only; for a valid FR
out of flight (any status but planned and in progress), `Settled` — id, status, job,
dependencies and a 64-bit digest of its content hash, not the parsed record. The full
records are kept for the FRs in flight and the invalid notes; a settled FR's is read
again from its file when asked for (`note`, `by_id`, `result`). Intake's mirror needs
no more than `entry` gives: the full record in flight, an `FRState` otherwise.

With a `cache_file`, those briefs outlive the process (`parse_cache`): the first walk
takes a note whose stat key is the one stored from the file instead of parsing it, and
`save_cache` writes them back.

The parts, one job each: `walk` (which notes to read), `reader` (a note's own verdict),
`verdicts` (the per-note bookkeeping), `names` (ids and stems, and what a dependency's
name means), `rules` (the vault-wide rules, incrementally), `index_cache` (the parse
cache's hints and writes). This module wires them and answers the reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from opus.domain import FeatureRequest, FRStatus
from opus.vault.checks import Note, ScanResult
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.index_cache import IndexCache
from opus.vault.maps import View
from opus.vault.names import Names
from opus.vault.note import InvalidNote, OtherNote
from opus.vault.reader import Reader
from opus.vault.rules import Rules
from opus.vault.scan import FEATURES_DIR, Version
from opus.vault.settled import Settled
from opus.vault.verdicts import JOB_STATUSES, Entry, FRState, Verdicts, walk_key
from opus.vault.walk import Walker

__all__ = ["JOB_STATUSES", "Entry", "FRState", "VaultIndex"]


class VaultIndex:
    """Every note's verdict, kept current by `refresh(changed paths)`; see the module."""

    def __init__(
        self,
        root: Path,
        *,
        default_repo: Path | None,
        features_dir: Path | str = FEATURES_DIR,
        id_pattern: str = DEFAULT_ID_PATTERN,
        finish_moves: bool = False,
        cache_file: Path | None = None,
    ) -> None:
        self.root = root
        self.finish_moves = finish_moves
        """Let `refresh_all` finish note moves and remove the temp files of note writes a
        kill cut short (intake only: it writes notes)."""
        self.default_repo = default_repo
        self.features_dir = features_dir
        self.id_pattern = id_pattern
        features = root / features_dir
        self._verdicts = verdicts = Verdicts(features)
        self._names = Names(verdicts)
        self._rules = Rules(verdicts, self._names, root)
        self._reader = Reader(verdicts, root=root, default_repo=default_repo,
                              id_pattern=id_pattern)
        self._walker = Walker(verdicts, self._reader, root=root, features_dir=features_dir,
                              id_pattern=id_pattern)
        self._cache = None if cache_file is None else IndexCache(
            cache_file, verdicts=verdicts, reader=self._reader, scope={
                "root": str(root), "features": str(features), "id_pattern": id_pattern})

    def __repr__(self) -> str:
        return f"VaultIndex({self.root}, notes={self.note_count}, frs={len(self)})"

    @property
    def checked(self) -> int:
        """Notes whose vault-wide rules were applied again, over the index's life."""
        return self._rules.checked

    @property
    def misses(self) -> int:
        """Files parsed, over the index's life (an unchanged file is only stat'ed)."""
        return self._reader.misses

    @property
    def cached(self) -> int:
        """Notes taken from the parse cache's file instead of parsed."""
        return self._reader.cached

    @property
    def racy_s(self) -> float:
        """A note changed less than this before it was read is not stored (`parse_cache`)."""
        return self._reader.racy_s

    @racy_s.setter
    def racy_s(self, seconds: float) -> None:
        self._reader.racy_s = seconds

    # ------------------------------------------------------------------ refreshing

    def full(self) -> ScanResult:
        """Walk the whole features folder; the whole result."""
        self.refresh_all()
        return self.result()

    def update(self, changed: Iterable[Path]) -> ScanResult:
        """Re-read the `changed` paths only; the whole result."""
        self.refresh(changed)
        return self.result()

    def refresh_all(self) -> set[Path]:
        """Walk the whole features folder (an unchanged file is only stat'ed; with
        `finish_moves`, half-done moves are repaired); the paths whose verdict changed."""
        features = self._walker.folder()
        self._reader.forget_repos()
        if self._cache is not None:
            self._cache.begin_walk()
        read, gone = self._walker.walk_all(features, finish_moves=self.finish_moves)
        changed = self._rules.apply(read, gone)
        if self._cache is not None:
            self._cache.end_walk()
        return changed

    def refresh(self, changed: Iterable[Path]) -> set[Path]:
        """Re-read the `changed` paths (created, edited, moved away or deleted); the paths
        whose verdict changed. A folder (one created or moved in, or gone) stands for every
        note below it: its subtree is walked, and the notes known below it are re-read."""
        return self._rules.apply(*self._walker.walk_changed(changed))

    def save_cache(self, *, least: int = 1) -> int | None:
        """Write what the index knows of each note to the cache file, when at least
        `least` notes were read or gone since the file last held it; how many notes were
        stored (None: not written)."""
        return None if self._cache is None else self._cache.save(least=least)

    # ------------------------------------------------------------------ reading

    def result(self) -> ScanResult:
        """Every note, in the folder walk's order (costs a scan: settled FRs are read)."""
        valid: list[FeatureRequest] = []
        invalid: list[InvalidNote] = []
        others: list[OtherNote] = []
        verdicts = self._verdicts
        for rel in sorted(verdicts.table, key=walk_key):
            note = self._note(rel)
            if isinstance(note, FeatureRequest):
                valid.append(note)
            elif note is not None:
                invalid.append(note)
            else:
                base = verdicts.base[verdicts.slot(rel)]
                if isinstance(base, str):
                    others.append(OtherNote(verdicts.path(rel), base))
        return ScanResult(tuple(valid), tuple(invalid), tuple(others))

    def note(self, path: Path) -> Note | None:
        """The verdict of the FR note at `path` (None: gone, or not an FR); a settled FR's
        is read again from its file."""
        rel = self._verdicts.rel(path)
        return None if rel is None or rel not in self._verdicts.table else self._note(rel)

    def _note(self, rel: str) -> Note | None:
        final = self._verdicts.final[self._verdicts.slot(rel)]
        if isinstance(final, Settled):
            return self._reader.full(rel, self._names.known())
        return final

    def entry(self, path: Path) -> Entry | None:
        """The FR note at `path` as intake works on it, without reading it: the full
        record of an FR in flight or an invalid note, a settled FR's `FRState`."""
        slot = self._slot_of(path)
        return None if slot is None else self._entry(slot, path)

    def _entry(self, slot: int, path: Path) -> Entry | None:
        final = self._verdicts.final[slot]
        if isinstance(final, Settled):
            return FRState(final.id, final.status, final.job, path)
        return final

    def is_fr(self, path: Path) -> bool:
        """The index holds an FR note (valid or not) at `path`."""
        slot = self._slot_of(path)
        return slot is not None and self._verdicts.final[slot] is not None

    def fr_paths(self) -> Iterator[Path]:
        """The path of every FR note (valid or not; no particular order)."""
        verdicts = self._verdicts
        for rel in verdicts.table:
            if verdicts.final[verdicts.slot(rel)] is not None:
                yield verdicts.path(rel)

    def version(self, path: Path) -> Version | None:
        """The version of the note at `path` last read (None when never read or gone)."""
        slot = self._slot_of(path)
        return None if slot is None else self._verdicts.table.version(slot)

    def _slot_of(self, path: Path) -> int | None:
        rel = self._verdicts.rel(path)
        return None if rel is None else self._verdicts.table.slot(rel)

    def planned(self) -> list[FeatureRequest]:
        """The valid planned FRs (costs their number, not the vault's size)."""
        verdicts = self._verdicts
        notes = (verdicts.final[verdicts.slot(rel)] for rel in self._rules.planned())
        return [note for note in notes
                if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED]

    def by_id(self, fr_id: str) -> FeatureRequest | None:
        """The valid FR with this id (a settled one is read again from its file)."""
        rel = self._names.valid(fr_id)
        note = None if rel is None else self._note(rel)
        return note if isinstance(note, FeatureRequest) else None

    def entry_by_id(self, fr_id: str) -> FeatureRequest | FRState | None:
        """The valid FR with this id, as `entry` gives it (no read)."""
        rel = self._names.valid(fr_id)
        verdicts = self._verdicts
        entry = None if rel is None else self._entry(verdicts.slot(rel), verdicts.path(rel))
        return entry if isinstance(entry, FeatureRequest | FRState) else None

    @property
    def paths(self) -> Mapping[str, Path]:
        """The path of every valid FR by id (a live read-only view)."""

        def path(fr_id: str) -> Path | None:
            rel = self._names.valid(fr_id)
            return None if rel is None else self._verdicts.path(rel)

        return View(path, self._names.valid_ids)

    @property
    def statuses(self) -> Mapping[str, FRStatus]:
        """The status of every valid FR by id (a live view, not a copy)."""

        def status(fr_id: str) -> FRStatus | None:
            rel = self._names.valid(fr_id)
            final = None if rel is None else self._verdicts.final[self._verdicts.slot(rel)]
            return final.status if isinstance(final, FeatureRequest | Settled) else None

        return View(status, self._names.valid_ids)

    def resolve(self, name: str) -> str | None:
        """The id a dependency `name` (casefolded) means (`Names.resolve`)."""
        return self._names.resolve(name)

    def __len__(self) -> int:
        """How many FR notes (valid or not) the vault holds."""
        return self._verdicts.frs

    @property
    def note_count(self) -> int:
        """How many notes (FRs or not) the vault holds."""
        return len(self._verdicts.table)
