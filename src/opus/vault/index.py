"""The vault's notes kept current from the paths that changed (incremental intake).

`VaultIndex` holds every note's verdict and the maps the vault-wide rules need — which
paths hold each id and each file stem, which notes depend on each name, the planned
FRs' dependency graph — so a change re-checks only the notes it can affect:

- the changed notes themselves;
- every note holding an id the change added or removed (duplicates);
- every note whose `depends_on` names such an id or file stem (dependencies);
- when the planned FRs' graph changed, the planned notes whose cycle changed.

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
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from opus.domain import FeatureRequest, FRStatus
from opus.git import is_repo
from opus.vault.checks import (
    Note,
    ScanResult,
    duplicate_error,
    find_cycles,
    flag_cycle,
    flag_duplicate,
    note_id,
    resolve_names,
    with_dependencies,
)
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.interrupted import finish_interrupted_moves
from opus.vault.leftovers import remove_leftovers
from opus.vault.maps import Holders, View
from opus.vault.note import InvalidNote, OtherNote, ParsedNote, Verdict
from opus.vault.parse_cache import RACY_S, Hints, ParseCache, settled_before
from opus.vault.parse_cache import Entry as CacheEntry
from opus.vault.scan import (
    FEATURES_DIR,
    UNREADABLE,
    Version,
    features_folder,
    is_note_path,
    read_file,
    relative_note_paths,
    usable,
)
from opus.vault.settled import Settled
from opus.vault.table import NoteTable

JOB_STATUSES = frozenset({FRStatus.PLANNED, FRStatus.IN_PROGRESS})
"""The statuses whose full record (body included) the index keeps: a note in them makes
or updates a job. Another status becomes one only by an edit, which is read again."""


@dataclass(frozen=True, slots=True)
class FRState:
    """What intake's mirror needs of a valid FR: its id, status, `job:` and path."""

    id: str
    status: FRStatus
    job: int | None
    path: Path


_Base = str | Settled | Note
"""A note's own verdict: for a note that is not an FR, the reason (`OtherNote.why`)."""
_Final = Settled | Note
"""An FR note's verdict after the vault-wide rules."""
Entry = Note | FRState
"""An FR note as intake works on it (`VaultIndex.entry`)."""


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
        self._features = root / features_dir
        self._prefix = str(self._features) + os.sep
        self._table = NoteTable()
        self._base: list[_Base | None] = []
        """By the table's slots: each note's own verdict (per-note rules and its repo)."""
        self._final: list[_Final | None] = []
        """By the table's slots: each FR note's verdict after the vault-wide rules."""
        self._parsed: dict[str, ParsedNote] = {}
        """The parse of each planned note: its repo is asked again at every full walk."""
        self._repos: dict[Path, bool] = {}
        self._ids = Holders()
        self._stems = Holders()
        """Only the stems that differ from their note's id (an id is looked up first)."""
        self._dependents = Holders()
        self._planned: dict[str, tuple[str, tuple[str, ...]]] = {}
        """Planned FRs that pass the duplicate and dependency rules: id and dependencies."""
        self._cycles: dict[str, list[str]] = {}
        self._frs = 0
        self.checked = 0
        """Notes whose vault-wide rules were applied again, over the index's life."""
        self.misses = 0
        """Files parsed, over the index's life (an unchanged file is only stat'ed)."""
        self.cached = 0
        """Notes taken from the parse cache's file instead of parsed."""
        self._cache = None if cache_file is None else ParseCache(cache_file, scope={
            "root": str(root), "features": str(self._features), "id_pattern": id_pattern})
        self.racy_s = RACY_S
        """A note changed less than this before it was read is not stored (`parse_cache`)."""
        self._hints: Hints | None = None
        """The cache file's verdicts, during the first walk only."""
        self._loaded = False
        self._unsaved = 0
        """Notes recorded or forgotten since the cache file last held what the index knows."""

    def __repr__(self) -> str:
        return f"VaultIndex({self.root}, notes={len(self._table)}, frs={self._frs})"

    # ------------------------------------------------------------------ reading

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
        features = features_folder(self.root, self.features_dir)
        self._repos.clear()  # a repo may have appeared or gone: ask git again
        if self._cache is not None and not self._loaded and not self._table:
            self._hints, self._loaded = self._cache.load(), True
        walked = bytearray(self._table.capacity)
        linked: list[str] = []
        leftovers: list[Path] | None = [] if self.finish_moves else None
        read: dict[str, _Base] = {}
        for rel in relative_note_paths(features, leftovers):
            self._read(rel, read, linked)
            slot = self._table.slot(rel)
            if slot is not None and slot < len(walked):
                walked[slot] = 1
        gone = {unseen for slot, mark in enumerate(walked)
                if not mark and (unseen := self._table.rel(slot)) is not None}
        if self.finish_moves and linked:
            removed = finish_interrupted_moves(
                [self._path(rel) for rel in linked],
                lambda path: read_file(path, self.id_pattern), features)
            for rel in linked:
                if self._path(rel) in removed:
                    read.pop(rel, None)
                    if rel in self._table:
                        gone.add(rel)
        if leftovers:
            remove_leftovers(leftovers)
        changed = self._apply(read, gone)
        self._end_hints()
        return changed

    def refresh(self, changed: Iterable[Path]) -> set[Path]:
        """Re-read the `changed` paths (created, edited, moved away or deleted); the paths
        whose verdict changed. A folder (one created or moved in, or gone) stands for every
        note below it: its subtree is walked, and the notes known below it are re-read."""
        features = features_folder(self.root, self.features_dir)
        present: set[str] = set()  # once each: nested folders may name a note twice
        gone: set[str] = set()
        for path in set(changed):
            rel = self._rel(path)
            if path.name.endswith(".md"):
                if rel is not None:  # else never indexed
                    (present if is_note_path(path, features) else gone).add(rel)
            else:
                below = self._subtree(path, features)
                present |= {rel for rel in below if is_note_path(self._path(rel), features)}
                gone |= below
        gone -= present
        read: dict[str, _Base] = {}
        gone |= {rel for rel in present if not self._read(rel, read)}
        known = (self._table.rel(slot) for rel in gone
                 if (slot := self._table.slot(rel)) is not None)
        return self._apply(read, {rel for rel in known if rel is not None})

    def _subtree(self, folder: Path, features: Path) -> set[str]:
        """The notes below `folder` now, and those known below it before (gone unless
        still there). Costs the index's size: for folder events only."""
        inside = str(folder) + os.sep
        if inside.startswith(self._prefix):
            prefix = inside[len(self._prefix):]
            below = {rel for rel in self._table if rel.startswith(prefix)}
        else:
            prefix = ""
            below = set(self._table) if self._prefix.startswith(inside) else set()
        if folder.is_relative_to(features) and not _hidden(folder, features):
            # nothing when it is not a folder (now)
            below.update(prefix + rel for rel in relative_note_paths(folder))
        return below

    def _read(self, rel: str, read: dict[str, _Base], linked: list[str] | None = None) -> bool:
        """Stat the note at `rel`; parse it when its stat key changed, and put its new
        verdict in `read` (also a planned note's, whose repo is asked again). False when
        the file is gone."""
        full = self._prefix + rel
        try:
            st = os.stat(full)
        except FileNotFoundError:
            return False
        if linked is not None and st.st_nlink > 1:
            linked.append(rel)
        slot = self._table.slot(rel)
        if slot is not None and self._table.same(slot, st):
            parsed = self._parsed.get(rel)
            if parsed is not None:  # unchanged, but git has a say in it
                read[self._table.rel(slot) or rel] = self._usable(parsed)
            return True
        brief = None if self._hints is None or slot is not None else self._hints.take(rel, st)
        if brief is not None:
            self.cached += 1
            read[self._store(rel, st, lasting=True)] = brief
            return True
        self.misses += 1
        read_ns = time.time_ns()  # after the stat: a change from now on changes its key
        verdict = read_file(Path(full), self.id_pattern)
        if verdict is None:
            return False
        rel = self._store(rel, st, lasting=settled_before(st, read_ns, self.racy_s))
        if isinstance(verdict, ParsedNote) and verdict.fr.status is FRStatus.PLANNED:
            self._parsed[rel] = verdict
        read[rel] = self._own(verdict)
        return True

    def _store(self, rel: str, st: os.stat_result, *, lasting: bool) -> str:
        """Record the version read at `rel`; the path text stored (shared by every map)."""
        slot = self._table.put(rel, st, lasting=lasting)
        while len(self._base) < self._table.capacity:
            self._base.append(None)
            self._final.append(None)
        self._unsaved += 1
        rel = self._table.rel(slot) or rel
        self._parsed.pop(rel, None)
        return rel

    def _own(self, verdict: Verdict) -> _Base:
        if isinstance(verdict, OtherNote):
            return sys.intern(verdict.why)  # a handful of reasons, shared by every note
        if isinstance(verdict, InvalidNote):
            return verdict
        return self._usable(verdict)

    def _usable(self, parsed: ParsedNote) -> Settled | Note:
        note = usable(parsed, vault_root=self.root, default_repo=self.default_repo,
                      is_repo=self._is_repo)
        if isinstance(note, FeatureRequest) and note.status not in JOB_STATUSES:
            return Settled.of(note)
        return note

    def _full(self, rel: str) -> Note | None:
        """A settled FR's full record, read again from its file, without its body (as
        every FR out of flight); None if the file is gone or no longer an FR."""
        verdict = read_file(self._path(rel), self.id_pattern)
        if isinstance(verdict, InvalidNote):
            return verdict
        if not isinstance(verdict, ParsedNote):
            return None
        if verdict.fr.status not in JOB_STATUSES:
            verdict = replace(verdict, fr=replace(verdict.fr, body=""))
        note = usable(verdict, vault_root=self.root, default_repo=self.default_repo,
                      is_repo=self._is_repo)
        return with_dependencies(note, self._known())

    # ------------------------------------------------------------------ the parse cache

    def _end_hints(self) -> None:
        """After the first walk: drop the file's verdicts, and count how far the file is
        from what the index knows (the notes not taken from it, the entries not used)."""
        hints, self._hints = self._hints, None
        if hints is not None:
            self._unsaved = len(self._table) + len(hints) - 2 * hints.used

    def save_cache(self, *, least: int = 1) -> int | None:
        """Write what the index knows of each note to the cache file, when at least
        `least` notes were read or gone since the file last held it; how many notes were
        stored (None: not written)."""
        if self._cache is None or self._unsaved < least:
            return None
        count = self._cache.save(self._briefs())
        if count is not None:
            self._unsaved = 0
        return count

    def _briefs(self) -> Iterator[CacheEntry]:
        """The notes whose verdict may be stored: a brief one (not an FR, or a settled FR)
        read long enough after the note's last change (`parse_cache`)."""
        for rel in self._table:
            slot = self._slot(rel)
            base = self._base[slot]
            if not self._table.lasting(slot):
                continue
            if isinstance(base, Settled) or (
                    isinstance(base, str) and not base.startswith(UNREADABLE)):
                yield rel, self._table.key(slot), base

    # ------------------------------------------------------------------ views

    def result(self) -> ScanResult:
        """Every note, in the folder walk's order (costs a scan: settled FRs are read)."""
        valid: list[FeatureRequest] = []
        invalid: list[InvalidNote] = []
        others: list[OtherNote] = []
        for rel in sorted(self._table, key=_walk_key):
            note = self._note(rel)
            if isinstance(note, FeatureRequest):
                valid.append(note)
            elif note is not None:
                invalid.append(note)
            else:
                base = self._base[self._slot(rel)]
                if isinstance(base, str):
                    others.append(OtherNote(self._path(rel), base))
        return ScanResult(tuple(valid), tuple(invalid), tuple(others))

    def note(self, path: Path) -> Note | None:
        """The verdict of the FR note at `path` (None: gone, or not an FR); a settled FR's
        is read again from its file."""
        rel = self._rel(path)
        return None if rel is None or rel not in self._table else self._note(rel)

    def _note(self, rel: str) -> Note | None:
        final = self._final[self._slot(rel)]
        return self._full(rel) if isinstance(final, Settled) else final

    def entry(self, path: Path) -> Entry | None:
        """The FR note at `path` as intake works on it, without reading it: the full
        record of an FR in flight or an invalid note, a settled FR's `FRState`."""
        rel = self._rel(path)
        slot = None if rel is None else self._table.slot(rel)
        return None if slot is None else self._entry(slot, path)

    def _entry(self, slot: int, path: Path) -> Entry | None:
        final = self._final[slot]
        if isinstance(final, Settled):
            return FRState(final.id, final.status, final.job, path)
        return final

    def is_fr(self, path: Path) -> bool:
        """The index holds an FR note (valid or not) at `path`."""
        rel = self._rel(path)
        slot = None if rel is None else self._table.slot(rel)
        return slot is not None and self._final[slot] is not None

    def fr_paths(self) -> Iterator[Path]:
        """The path of every FR note (valid or not; no particular order)."""
        for rel in self._table:
            if self._final[self._slot(rel)] is not None:
                yield self._path(rel)

    def version(self, path: Path) -> Version | None:
        """The version of the note at `path` last read (None when never read or gone)."""
        rel = self._rel(path)
        slot = None if rel is None else self._table.slot(rel)
        return None if slot is None else self._table.version(slot)

    def planned(self) -> list[FeatureRequest]:
        """The valid planned FRs (costs their number, not the vault's size)."""
        notes = (self._final[self._slot(rel)] for rel in self._planned)
        return [note for note in notes
                if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED]

    def by_id(self, fr_id: str) -> FeatureRequest | None:
        """The valid FR with this id (a settled one is read again from its file)."""
        rel = self._valid(fr_id)
        note = None if rel is None else self._note(rel)
        return note if isinstance(note, FeatureRequest) else None

    def entry_by_id(self, fr_id: str) -> FeatureRequest | FRState | None:
        """The valid FR with this id, as `entry` gives it (no read)."""
        rel = self._valid(fr_id)
        entry = None if rel is None else self._entry(self._slot(rel), self._path(rel))
        return entry if isinstance(entry, FeatureRequest | FRState) else None

    @property
    def paths(self) -> Mapping[str, Path]:
        """The path of every valid FR by id (a live read-only view)."""

        def path(fr_id: str) -> Path | None:
            rel = self._valid(fr_id)
            return None if rel is None else self._path(rel)

        return View(path, self._valid_ids)

    @property
    def statuses(self) -> Mapping[str, FRStatus]:
        """The status of every valid FR by id (a live view, not a copy)."""

        def status(fr_id: str) -> FRStatus | None:
            rel = self._valid(fr_id)
            final = None if rel is None else self._final[self._slot(rel)]
            return final.status if isinstance(final, FeatureRequest | Settled) else None

        return View(status, self._valid_ids)

    def _valid(self, fr_id: str) -> str | None:
        """The note of the valid FR with this id: the only holder of the id (two holders
        of an id are both invalid), when its verdict is valid under that very id."""
        holders = self._ids.get(fr_id.casefold())
        if len(holders) != 1:
            return None
        final = self._final[self._slot(holders[0])]
        valid = isinstance(final, FeatureRequest | Settled) and final.id == fr_id
        return holders[0] if valid else None

    def _valid_ids(self) -> list[str]:
        """Every valid FR's id (costs the vault's size: for iterating a view)."""
        finals = (self._final[self._slot(rel)] for rel in self._ids.single_holders())
        return [final.id for final in finals if isinstance(final, FeatureRequest | Settled)]

    def __len__(self) -> int:
        """How many FR notes (valid or not) the vault holds."""
        return self._frs

    @property
    def note_count(self) -> int:
        """How many notes (FRs or not) the vault holds."""
        return len(self._table)

    # ------------------------------------------------------------------ the rules

    def _apply(self, read: dict[str, _Base], gone: set[str]) -> set[Path]:
        """Take in the verdicts `read` and forget `gone`; re-check what they can affect."""
        keys: set[str] = set()
        for rel in gone:
            keys |= self._forget(rel)
        affected: set[str] = set()
        for rel, base in read.items():
            old = self._base[self._slot(rel)]
            if old is base or old == base:
                continue  # the same verdict (a planned note whose repo is as it was)
            affected.add(rel)
            keys |= self._forget(rel)
            keys |= self._remember(rel, base)
        for key in keys:
            affected.update(self._ids.get(key), self._dependents.get(key))
        changed = self._recheck(affected, gone)
        for rel in gone:
            self._drop(rel)
        return {self._path(rel) for rel in changed}

    def _recheck(self, affected: set[str], gone: set[str]) -> set[str]:
        for rel in gone:
            self._planned.pop(rel, None)
        staged: dict[str, _Final] = {}
        planned_changed = bool(gone)
        for rel in affected:
            base = self._base[self._slot(rel)]
            note = None if base is None or isinstance(base, str) else self._stage(rel, base)
            if note is not None:
                staged[rel] = note
            planned_changed |= self._plan(rel, note)
        self.checked += len(staged)
        if planned_changed:
            for rel in self._new_cycles():
                base = self._base[self._slot(rel)]
                if rel not in staged and base is not None and not isinstance(base, str):
                    staged[rel] = self._stage(rel, base)
        changed = {rel for rel in gone | (affected - set(staged))
                   if self._set_final(rel, None)}
        changed |= {rel for rel, note in staged.items()
                    if self._set_final(rel, _with_cycles(note, self._cycles))}
        return changed

    def _stage(self, rel: str, base: Settled | Note) -> _Final:
        """The duplicate and dependency rules (cycles come after, over all planned FRs)."""
        note = self._duplicates(rel, base)
        if isinstance(note, Settled):
            if not note.depends_on:
                return note
            return replace(note, depends_on=resolve_names(note.depends_on, self._known()))
        return with_dependencies(note, self._known())

    def _plan(self, rel: str, note: _Final | None) -> bool:
        """Keep `_planned` in step with `note`; True when the planned graph changed."""
        entry = None
        if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED:
            entry = (note.id, note.depends_on)
        if self._planned.get(rel) == entry:
            return False
        if entry is None:
            del self._planned[rel]
        else:
            self._planned[rel] = entry
        return True

    def _new_cycles(self) -> list[str]:
        """Recompute the cycles among the planned FRs; the planned notes whose cycle changed."""
        ids = {fr_id for fr_id, _deps in self._planned.values()}
        cycles = find_cycles({fr_id: [d for d in deps if d in ids]
                              for fr_id, deps in self._planned.values()})
        moved = {fr_id for fr_id in set(cycles) | set(self._cycles)
                 if cycles.get(fr_id) != self._cycles.get(fr_id)}
        self._cycles = cycles
        return [rel for rel, (fr_id, _deps) in self._planned.items() if fr_id in moved]

    def _set_final(self, rel: str, note: _Final | None) -> bool:
        slot = self._slot(rel)
        old = self._final[slot]
        if old == note:
            return False
        self._final[slot] = note
        self._frs += (note is not None) - (old is not None)
        return True

    def _duplicates(self, rel: str, base: Settled | Note) -> Settled | Note:
        fr_id = _id_of(base)
        holders = () if fr_id is None else self._ids.get(fr_id.casefold())
        if fr_id is None or len(holders) < 2:
            return base
        path = self._path(rel)
        same = [self._path(holder) for holder in sorted(holders, key=_walk_key)]
        if not isinstance(base, Settled):
            return flag_duplicate(base, {fr_id.casefold(): same}, self.root)
        error = duplicate_error(base.id, path, same, self.root)
        return base if error is None else InvalidNote(path, error, base.id, base.status.value)

    def _known(self) -> Mapping[str, str]:
        return View(self.resolve, lambda: self._ids.keys() | self._stems.keys())

    def resolve(self, name: str) -> str | None:
        """The id a dependency `name` (casefolded) means: a note's id (the last in walk
        order wins, as a full scan assigns them), else the first note whose file stem it is."""
        holders = self._ids.get(name)
        if holders:
            rel = max(holders, key=_walk_key)
        else:
            stems = self._stems.get(name)
            if not stems:
                return None
            rel = min(stems, key=_walk_key)
        return _id_of(self._base[self._slot(rel)])

    # ------------------------------------------------------------------ maps

    def _remember(self, rel: str, base: _Base) -> set[str]:
        self._base[self._slot(rel)] = base
        return self._holders(rel, base, add=True)

    def _forget(self, rel: str) -> set[str]:
        slot = self._slot(rel)
        base, self._base[slot] = self._base[slot], None
        return set() if base is None else self._holders(rel, base, add=False)

    def _holders(self, rel: str, base: _Base, *, add: bool) -> set[str]:
        """Add `rel` to (or take it from) the maps of its id, stem and dependencies; the
        names whose holders changed."""
        fr_id = _id_of(base)
        if fr_id is None:
            return set()
        id_key, stem_key = fr_id.casefold(), _stem(rel).casefold()
        change = Holders.add if add else Holders.discard
        change(self._ids, id_key, rel)
        if stem_key != id_key:  # the same name is found by its id first
            change(self._stems, stem_key, rel)
        if isinstance(base, FeatureRequest | Settled):
            for dep in base.depends_on:
                change(self._dependents, dep.casefold(), rel)
        return {id_key, stem_key}

    def _drop(self, rel: str) -> None:
        self._unsaved += 1
        slot = self._table.drop(rel)
        if slot is not None:
            self._base[slot] = self._final[slot] = None
        self._parsed.pop(rel, None)

    # ------------------------------------------------------------------ paths

    def _slot(self, rel: str) -> int:
        slot = self._table.slot(rel)
        assert slot is not None, rel
        return slot

    def _rel(self, path: Path) -> str | None:
        text = str(path)
        return text[len(self._prefix):] if text.startswith(self._prefix) else None

    def _path(self, rel: str) -> Path:
        return self._features / rel

    def _is_repo(self, path: Path) -> bool:
        if path not in self._repos:
            self._repos[path] = is_repo(path)
        return self._repos[path]


def _hidden(path: Path, features: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(features).parts)


def _id_of(base: _Base | None) -> str | None:
    if base is None or isinstance(base, str):
        return None
    return base.id if isinstance(base, Settled) else note_id(base)


def _with_cycles(note: _Final, cycles: Mapping[str, list[str]]) -> _Final:
    return note if isinstance(note, Settled) else flag_cycle(note, cycles)


def _stem(rel: str) -> str:
    """The file stem of a note's path text (every note's name ends in `.md`)."""
    return rel.rsplit(os.sep, 1)[-1].removesuffix(".md")


def _walk_key(rel: str) -> tuple[tuple[int, str], ...]:
    """`os.walk`'s sorted top-down order: a folder's files before its subfolders."""
    parts = rel.split(os.sep)
    return (*((1, part) for part in parts[:-1]), (0, parts[-1]))
