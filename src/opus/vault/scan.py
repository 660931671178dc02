"""Reading a whole vault: every `*.md` under `10_features/`, parsed once per file version."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from opus.domain import FRStatus
from opus.errors import NoteError
from opus.git import is_repo
from opus.vault.checks import Note, ScanResult, check_vault
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.leftovers import LEFTOVER_SUFFIXES
from opus.vault.note import InvalidNote, OtherNote, ParsedNote, Verdict, read_note, resolve_repo

FEATURES_DIR = "10_features"
UNREADABLE = "cannot be read"
"""How the reason of a note that could not be read begins (it depends on permissions,
not on the note's bytes: never stored across restarts)."""
_Key = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a note file: its stat key, mtime and when opus first saw it."""

    key: _Key
    mtime: float
    seen: float
    """`time.monotonic()` when this version was first read."""

    def stable(self, settle_s: float, *, now: float, mono: float) -> bool:
        """Unchanged for `settle_s`: by its mtime, or (a clock skewed mtime) since first seen."""
        return now - self.mtime >= settle_s or mono - self.seen >= settle_s

    def due_in(self, settle_s: float, *, now: float, mono: float) -> float:
        """Seconds until `stable` turns true (0 when it is)."""
        return max(0.0, min(settle_s - (now - self.mtime), settle_s - (mono - self.seen)))


@dataclass
class NoteCache:
    """Parsed notes keyed by path and (mtime_ns, size, inode): unchanged files are not re-read.

    The daemon keeps one across scans. Our own atomic writes replace the inode, so a
    write-back is always seen even when it lands within the clock's resolution.
    """

    id_pattern: str = DEFAULT_ID_PATTERN
    bodies: frozenset[FRStatus] | None = None
    """Keep the body only of FRs in these statuses (None: of all). A body is only needed
    to make or update a job (planned, in-progress); another status becomes one only by an
    edit, which is read again. Most of a large vault's memory is bodies otherwise."""
    _entries: dict[Path, tuple[Version, Verdict]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def read(self, path: Path) -> Verdict | None:
        """The parsed note at `path`, from the cache when unchanged; None if it vanished."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._entries.get(path)
        if cached is not None and cached[0].key == key:
            self.hits += 1
            return cached[1]
        self.misses += 1
        parsed = read_file(path, self.id_pattern)
        if (isinstance(parsed, ParsedNote) and self.bodies is not None
                and parsed.fr.status not in self.bodies):
            parsed = replace(parsed, fr=replace(parsed.fr, body=""))
        if parsed is not None:
            version = Version(key, stat.st_mtime, time.monotonic())
            self._entries[path] = (version, parsed)
        return parsed

    def peek(self, path: Path) -> Verdict | None:
        """The verdict last read for `path`, without looking at the file."""
        cached = self._entries.get(path)
        return cached[1] if cached is not None else None

    def version(self, path: Path) -> Version | None:
        """The version of `path` last read (None when never read or gone)."""
        cached = self._entries.get(path)
        return cached[0] if cached is not None else None

    def forget(self, path: Path) -> None:
        """Drop what was read at `path` (it is gone, or no longer a note)."""
        self._entries.pop(path, None)

    def keep_only(self, paths: set[Path]) -> None:
        """Forget notes that are gone, so the cache does not grow forever."""
        for path in set(self._entries) - paths:
            del self._entries[path]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"NoteCache(notes={len(self)}, hits={self.hits}, misses={self.misses})"


def read_file(path: Path, id_pattern: str) -> Verdict | None:
    """The note at `path` parsed (`read_note`); None when it vanished."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return OtherNote(path, f"{UNREADABLE} ({exc.strerror})")
    return read_note(path, data, id_pattern=id_pattern)


def note_paths(features: Path) -> Iterator[Path]:
    """Every regular `*.md` file below `features`, skipping dot-files, dot-folders and links.

    Hidden names are editor and opus temp files; symlinks are skipped because an atomic
    write-back would replace the link with a copy; FIFOs and devices would block a read.
    """
    for folder, _prefix, names in _note_folders(features):
        for name in names:
            yield folder / name


def relative_note_paths(features: Path, leftovers: list[Path] | None = None) -> Iterator[str]:
    """`note_paths`, as text relative to `features` (no `Path` object per note). With a
    `leftovers` list, the hidden files a killed note writer left are added to it."""
    for _folder, prefix, names in _note_folders(features, leftovers):
        for name in names:
            yield prefix + name


def _note_folders(
    features: Path, leftovers: list[Path] | None = None
) -> Iterator[tuple[Path, str, list[str]]]:
    """Each folder below `features`, its path relative to it ("" or ending in a separator)
    and its notes' names, in `os.walk`'s order (a folder's files, then its subfolders,
    each sorted); the entries' types come from the directory listing: no stat per file."""
    folders = [(features, "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue
        if leftovers is not None:
            leftovers.extend(Path(entry.path) for entry in entries if _leftover(entry))
        entries = [entry for entry in entries if not entry.name.startswith(".")]
        yield folder, prefix, sorted(entry.name for entry in entries
                                     if entry.name.endswith(".md") and _regular(entry))
        subfolders = sorted(entry.name for entry in entries if _folder(entry))
        folders.extend((folder / name, f"{prefix}{name}{os.sep}")
                       for name in reversed(subfolders))


def _leftover(entry: os.DirEntry[str]) -> bool:
    """A hidden file a killed note writer left (see `leftovers`)."""
    return entry.name.startswith(".") and entry.name.endswith(LEFTOVER_SUFFIXES) and _regular(entry)


def _regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _regular_path(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def scan_vault(
    root: Path,
    *,
    default_repo: Path | None,
    cache: NoteCache | None = None,
    features_dir: Path | str = FEATURES_DIR,
    id_pattern: str = DEFAULT_ID_PATTERN,
) -> ScanResult:
    """Parse and validate every FR note of the vault at `root` (SPEC §1).

    Notes that are not FRs are returned in `others`, untouched. Raises `NoteError`
    when `root` has no features folder.
    """
    if cache is None or cache.id_pattern != id_pattern:
        cache = cache if cache is not None and not len(cache) else NoteCache()
        cache.id_pattern = id_pattern
    features = features_folder(root, features_dir)
    notes: list[Note] = []
    others: list[OtherNote] = []
    repos: dict[Path, bool] = {}

    def memo_is_repo(path: Path) -> bool:
        if path not in repos:
            repos[path] = is_repo(path)
        return repos[path]

    paths = list(note_paths(features))
    cache.keep_only(set(paths))
    for path in paths:
        parsed = cache.read(path)
        if isinstance(parsed, ParsedNote):
            notes.append(usable(parsed, vault_root=root, default_repo=default_repo,
                                is_repo=memo_is_repo))
        elif isinstance(parsed, OtherNote):
            others.append(parsed)
        elif parsed is not None:
            notes.append(parsed)
    return check_vault(notes, root, others=others)


def features_folder(root: Path, features_dir: Path | str) -> Path:
    """`root/features_dir`; `NoteError` naming the fix when it is not a folder."""
    features = root / features_dir
    if not features.is_dir():
        raise NoteError(
            f"the vault at {root} has no {features_dir}/ folder; "
            "run `opus init` or fix vault.path / vault.features_dir in opus.toml"
        )
    return features


def is_note_path(path: Path, features: Path) -> bool:
    """What `note_paths` would yield: a regular, visible `*.md` file below `features`."""
    if not path.is_relative_to(features) or not path.name.endswith(".md"):
        return False
    if any(part.startswith(".") for part in path.relative_to(features).parts):
        return False
    return _regular_path(path)


def walk_key(path: Path, root: Path) -> tuple[tuple[int, str], ...]:
    """`os.walk`'s sorted top-down order: a folder's files before its subfolders."""
    text, top = str(path), str(root) + os.sep
    parts = text[len(top):].split(os.sep) if text.startswith(top) else list(path.parts)
    return (*((1, part) for part in parts[:-1]), (0, parts[-1]))


def usable(
    parsed: ParsedNote,
    *,
    vault_root: Path,
    default_repo: Path | None,
    is_repo: Callable[[Path], bool] = is_repo,
) -> Note:
    """A parsed FR with its repo resolved; one marked `status: invalid` stays invalid."""
    fr = parsed.fr
    if fr.status is FRStatus.INVALID:
        error = parsed.error or "marked invalid; fix the note and set `status: planned`"
        return InvalidNote(fr.path, error, fr.id, fr.status.value)
    return resolve_repo(
        parsed, vault_root=vault_root, default_repo=default_repo, is_repo=is_repo
    )
