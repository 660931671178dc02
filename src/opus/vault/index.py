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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from opus.domain import FeatureRequest, FRStatus
from opus.git import is_repo
from opus.vault.checks import (
    Note,
    ScanResult,
    find_cycles,
    flag_cycle,
    flag_duplicate,
    note_id,
    with_dependencies,
)
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.interrupted import finish_interrupted_moves
from opus.vault.note import OtherNote, ParsedNote, Verdict
from opus.vault.scan import (
    FEATURES_DIR,
    NoteCache,
    features_folder,
    is_note_path,
    note_paths,
    usable,
    walk_key,
)

_Base = Note | OtherNote
JOB_STATUSES = frozenset({FRStatus.PLANNED, FRStatus.IN_PROGRESS})
"""The statuses whose body the index keeps: a note in them makes or updates a job."""
V = TypeVar("V")


class VaultIndex:
    """Every note's verdict, kept current by `refresh(changed paths)`; see the module."""

    def __init__(
        self,
        root: Path,
        *,
        default_repo: Path | None,
        features_dir: Path | str = FEATURES_DIR,
        cache: NoteCache | None = None,
        id_pattern: str = DEFAULT_ID_PATTERN,
        finish_moves: bool = False,
    ) -> None:
        self.root = root
        self.finish_moves = finish_moves
        """Let `refresh_all` finish note moves a kill cut short (intake only: it writes notes)."""
        self.default_repo = default_repo
        self.features_dir = features_dir
        self.cache = cache if cache is not None else NoteCache(id_pattern=id_pattern,
                                                                 bodies=JOB_STATUSES)
        self._repos: dict[Path, bool] = {}
        self._parsed: dict[Path, Verdict] = {}
        """The cached parse each `_base` entry was made from."""
        self._base: dict[Path, _Base] = {}
        """Each note's own verdict: per-note rules and its repo, before the vault-wide ones."""
        self._final: dict[Path, Note] = {}
        """Each FR note's verdict after the vault-wide rules."""
        self._ids = _Holders()
        self._stems = _Holders()
        self._dependents = _Holders()
        self._planned: dict[Path, tuple[str, tuple[str, ...]]] = {}
        """Planned FRs that pass the duplicate and dependency rules: id and dependencies."""
        self._cycles: dict[str, list[str]] = {}
        self._by_id: dict[str, Path] = {}
        """The id of every valid FR → its path (valid ids are unique)."""
        self.checked = 0
        """Notes whose vault-wide rules were applied again, over the index's life."""

    def __repr__(self) -> str:
        return f"VaultIndex({self.root}, notes={len(self._base)})"

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
        """Walk the whole features folder (unchanged files come from the cache; with
        `finish_moves`, half-done moves are repaired); the paths whose verdict changed."""
        features = features_folder(self.root, self.features_dir)
        paths = list(note_paths(features))
        if self.finish_moves:
            removed = finish_interrupted_moves(paths, self.cache.read, features)
            paths = [path for path in paths if path not in removed]
        self._repos.clear()  # a repo may have appeared or gone: ask git again
        gone = set(self._base) - set(paths)
        self.cache.keep_only(set(paths))
        for path in gone:
            self._parsed.pop(path, None)
        return self._apply(self._read(paths), gone)

    def refresh(self, changed: Iterable[Path]) -> set[Path]:
        """Re-read the `changed` paths (created, edited, moved away or deleted); the paths
        whose verdict changed. A folder (one created or moved in, or gone) stands for every
        note below it: its subtree is walked, and the notes known below it are re-read."""
        features = features_folder(self.root, self.features_dir)
        present: set[Path] = set()  # once each: nested folders may name a note twice
        gone: set[Path] = set()
        for path in set(changed):
            if is_note_path(path, features):
                present.add(path)
            elif path.name.endswith(".md"):
                gone.add(path)
            else:
                below = self._subtree(path, features)
                present |= {note for note in below if is_note_path(note, features)}
                gone |= below
        gone -= present
        read = self._read(present)
        gone |= {path for path in present if path not in read}
        for path in gone:
            self.cache.forget(path)
            self._parsed.pop(path, None)
        return self._apply(read, {path for path in gone if path in self._base})

    def _subtree(self, folder: Path, features: Path) -> set[Path]:
        """The notes below `folder` now, and those known below it before (gone unless
        still there). Costs the index's size: for folder events only."""
        inside = str(folder) + os.sep
        below = {path for path in self._base if str(path).startswith(inside)}
        if folder.is_relative_to(features) and not _hidden(folder, features):
            below.update(note_paths(folder))  # nothing when it is not a folder (now)
        return below

    def _read(self, paths: Iterable[Path]) -> dict[Path, _Base]:
        read: dict[Path, _Base] = {}
        for path in paths:
            verdict = self.cache.read(path)
            if verdict is None:
                self._parsed.pop(path, None)
                continue
            if self._parsed.get(path) is verdict and not _asks_git(verdict):
                read[path] = self._base[path]  # unchanged file, and git has no say in it
                continue
            self._parsed[path] = verdict
            if isinstance(verdict, ParsedNote):
                read[path] = usable(verdict, vault_root=self.root,
                                    default_repo=self.default_repo, is_repo=self._is_repo)
            else:
                read[path] = verdict
        return read

    # ------------------------------------------------------------------ views

    def result(self) -> ScanResult:
        """Every note, in the folder walk's order (costs the vault's size: for scans)."""
        valid: list[FeatureRequest] = []
        invalid: list[Note] = []
        others: list[OtherNote] = []
        for path in sorted(self._base, key=self._walk_key):
            note = self._final.get(path)
            if isinstance(note, FeatureRequest):
                valid.append(note)
            elif note is not None:
                invalid.append(note)
            else:
                base = self._base[path]
                if isinstance(base, OtherNote):
                    others.append(base)
        return ScanResult(tuple(valid), tuple(invalid), tuple(others))  # type: ignore[arg-type]

    def note(self, path: Path) -> Note | None:
        """The verdict of the FR note at `path` (None: gone, or not an FR)."""
        return self._final.get(path)

    def notes(self) -> Iterator[Note]:
        """Every FR note's verdict (no particular order)."""
        return iter(self._final.values())

    def planned(self) -> list[FeatureRequest]:
        """The valid planned FRs (costs their number, not the vault's size)."""
        notes = (self._final.get(path) for path in self._planned)
        return [note for note in notes
                if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED]

    def by_id(self, fr_id: str) -> FeatureRequest | None:
        """The valid FR with this id."""
        path = self._by_id.get(fr_id)
        note = self._final.get(path) if path is not None else None
        return note if isinstance(note, FeatureRequest) else None

    @property
    def paths(self) -> Mapping[str, Path]:
        """The path of every valid FR by id (a live read-only view)."""
        return MappingProxyType(self._by_id)

    @property
    def statuses(self) -> Mapping[str, FRStatus]:
        """The status of every valid FR by id (a live view, not a copy)."""

        def status(fr_id: str) -> FRStatus | None:
            note = self.by_id(fr_id)
            return None if note is None else note.status

        return _View(status, self._by_id.keys)

    def __len__(self) -> int:
        """How many FR notes (valid or not) the vault holds."""
        return len(self._final)

    # ------------------------------------------------------------------ the rules

    def _apply(self, read: dict[Path, _Base], gone: set[Path]) -> set[Path]:
        """Take in the verdicts `read` and forget `gone`; re-check what they can affect."""
        keys: set[str] = set()
        for path in gone:
            keys |= self._forget(path)
        affected: set[Path] = set()
        for path, base in read.items():
            old = self._base.get(path)
            if old is base or old == base:
                continue  # the same verdict (a full walk over an unchanged vault)
            affected.add(path)
            keys |= self._forget(path)
            keys |= self._remember(path, base)
        for key in keys:
            affected.update(self._ids.get(key), self._dependents.get(key))
        return self._recheck(affected, gone)

    def _recheck(self, affected: set[Path], gone: set[Path]) -> set[Path]:
        for path in gone:
            self._planned.pop(path, None)
        staged: dict[Path, Note] = {}
        planned_changed = bool(gone)
        for path in affected:
            base = self._base.get(path)
            note = None if base is None or isinstance(base, OtherNote) else self._stage(base)
            if note is not None:
                staged[path] = note
            planned_changed |= self._plan(path, note)
        self.checked += len(staged)
        if planned_changed:
            for path in self._new_cycles():
                if path not in staged:
                    staged[path] = self._stage(self._base[path])  # type: ignore[arg-type]
        changed = {path for path in gone | (affected - set(staged))
                   if self._set_final(path, None)}
        changed |= {path for path, note in staged.items()
                    if self._set_final(path, flag_cycle(note, self._cycles))}
        return changed

    def _stage(self, base: Note) -> Note:
        """The duplicate and dependency rules (cycles come after, over all planned FRs)."""
        return self._dependencies(self._duplicates(base))

    def _plan(self, path: Path, note: Note | None) -> bool:
        """Keep `_planned` in step with `note`; True when the planned graph changed."""
        entry = None if note is None else _planned_entry(note)
        if self._planned.get(path) == entry:
            return False
        if entry is None:
            del self._planned[path]
        else:
            self._planned[path] = entry
        return True

    def _new_cycles(self) -> list[Path]:
        """Recompute the cycles among the planned FRs; the planned paths whose cycle changed."""
        ids = {fr_id for fr_id, _deps in self._planned.values()}
        cycles = find_cycles({fr_id: [d for d in deps if d in ids]
                              for fr_id, deps in self._planned.values()})
        moved = {fr_id for fr_id in set(cycles) | set(self._cycles)
                 if cycles.get(fr_id) != self._cycles.get(fr_id)}
        self._cycles = cycles
        return [path for path, (fr_id, _deps) in self._planned.items() if fr_id in moved]

    def _set_final(self, path: Path, note: Note | None) -> bool:
        old = self._final.get(path)
        if old == note:
            return False
        if isinstance(old, FeatureRequest) and self._by_id.get(old.id) == path:
            del self._by_id[old.id]
        if note is None:
            self._final.pop(path, None)
        else:
            self._final[path] = note
            if isinstance(note, FeatureRequest):
                self._by_id[note.id] = path
        return True

    def _duplicates(self, note: Note) -> Note:
        fr_id = note_id(note)
        if fr_id is None:
            return note
        key = fr_id.casefold()
        holders = self._ids.get(key)
        if len(holders) < 2:
            return note
        return flag_duplicate(note, {key: sorted(holders, key=self._walk_key)},
                              self.root)

    def _dependencies(self, note: Note) -> Note:
        known = _View(self.resolve, lambda: self._ids.keys() | self._stems.keys())
        return with_dependencies(note, known)

    def resolve(self, name: str) -> str | None:
        """The id a dependency `name` (casefolded) means: a note's id (the last in walk
        order wins, as a full scan assigns them), else the first note whose file stem it is."""
        holders = self._ids.get(name)
        if holders:
            path = max(holders, key=self._walk_key)
        else:
            stems = self._stems.get(name)
            if not stems:
                return None
            path = min(stems, key=self._walk_key)
        return note_id(self._base[path])  # type: ignore[arg-type]

    # ------------------------------------------------------------------ maps

    def _remember(self, path: Path, base: _Base) -> set[str]:
        self._base[path] = base
        if isinstance(base, OtherNote):
            return set()
        fr_id = note_id(base)
        keys: set[str] = set()
        if fr_id is not None:
            keys = {fr_id.casefold(), path.stem.casefold()}
            self._ids.add(fr_id.casefold(), path)
            self._stems.add(path.stem.casefold(), path)
        if isinstance(base, FeatureRequest):
            for dep in base.depends_on:
                self._dependents.add(dep.casefold(), path)
        return keys

    def _forget(self, path: Path) -> set[str]:
        base = self._base.pop(path, None)
        if base is None or isinstance(base, OtherNote):
            return set()
        keys: set[str] = set()
        fr_id = note_id(base)
        if fr_id is not None:
            keys = {fr_id.casefold(), path.stem.casefold()}
            self._ids.discard(fr_id.casefold(), path)
            self._stems.discard(path.stem.casefold(), path)
        if isinstance(base, FeatureRequest):
            for dep in base.depends_on:
                self._dependents.discard(dep.casefold(), path)
        return keys

    def _walk_key(self, path: Path) -> tuple[tuple[int, str], ...]:
        return walk_key(path, self.root)

    def _is_repo(self, path: Path) -> bool:
        if path not in self._repos:
            self._repos[path] = is_repo(path)
        return self._repos[path]


def _hidden(path: Path, features: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(features).parts)


def _asks_git(verdict: Verdict) -> bool:
    """A planned note's verdict depends on whether its repo is a git repository now."""
    return isinstance(verdict, ParsedNote) and verdict.fr.status is FRStatus.PLANNED


def _planned_entry(note: Note) -> tuple[str, tuple[str, ...]] | None:
    if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED:
        return note.id, note.depends_on
    return None


class _Holders:
    """Name → the paths holding it. Most names have one holder, kept without a set (a set
    per note of a large vault is megabytes)."""

    def __init__(self) -> None:
        self._one: dict[str, Path] = {}
        self._many: dict[str, set[Path]] = {}

    def get(self, name: str) -> tuple[Path, ...]:
        one = self._one.get(name)
        if one is not None:
            return (one,)
        return tuple(self._many.get(name, ()))

    def keys(self) -> set[str]:
        return self._one.keys() | self._many.keys()

    def add(self, name: str, path: Path) -> None:
        many = self._many.get(name)
        if many is not None:
            many.add(path)
            return
        one = self._one.get(name)
        if one is None or one == path:
            self._one[name] = path
            return
        del self._one[name]
        self._many[name] = {one, path}

    def discard(self, name: str, path: Path) -> None:
        if self._one.get(name) == path:
            del self._one[name]
            return
        many = self._many.get(name)
        if many is None:
            return
        many.discard(path)
        if len(many) == 1:
            self._one[name] = many.pop()
        if not many:
            del self._many[name]


class _View(Mapping[str, V]):
    """A read-only mapping computed by `lookup` on demand over `keys` (no copy of the
    index: a lookup costs one entry, not the vault)."""

    def __init__(self, lookup: Callable[[str], V | None],
                 keys: Callable[[], Collection[str]]) -> None:
        self._lookup = lookup
        self._keys = keys

    def __getitem__(self, key: str) -> V:
        found = self._lookup(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())
