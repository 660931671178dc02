"""Reading a whole vault: every `*.md` under `10_features/`, parsed once per file version."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opus.domain import FRStatus
from opus.errors import NoteError
from opus.git import is_repo
from opus.vault.checks import Note, ScanResult, check_vault
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.interrupted import finish_interrupted_moves
from opus.vault.note import InvalidNote, OtherNote, ParsedNote, Verdict, read_note, resolve_repo

FEATURES_DIR = "10_features"
_Key = tuple[int, int, int]


@dataclass(frozen=True)
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
        parsed = _read_file(path, self.id_pattern)
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

    def keep_only(self, paths: set[Path]) -> None:
        """Forget notes that are gone, so the cache does not grow forever."""
        for path in set(self._entries) - paths:
            del self._entries[path]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"NoteCache(notes={len(self)}, hits={self.hits}, misses={self.misses})"


def _read_file(path: Path, id_pattern: str) -> Verdict | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return OtherNote(path, f"cannot be read ({exc.strerror})")
    return read_note(path, data, id_pattern=id_pattern)


def note_paths(features: Path) -> Iterator[Path]:
    """Every regular `*.md` file below `features`, skipping dot-files, dot-folders and links.

    Hidden names are editor and opus temp files; symlinks are skipped because an atomic
    write-back would replace the link with a copy; FIFOs and devices would block a read.
    """
    for folder, dirs, files in os.walk(features):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(".md") and not name.startswith(".") and _regular(path):
                yield path


def _regular(path: Path) -> bool:
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
    index = VaultIndex(root, default_repo=default_repo, features_dir=features_dir, cache=cache)
    return index.full()


def _features_folder(root: Path, features_dir: Path | str) -> Path:
    features = root / features_dir
    if not features.is_dir():
        raise NoteError(
            f"the vault at {root} has no {features_dir}/ folder; "
            "run `opus init` or fix vault.path / vault.features_dir in opus.toml"
        )
    return features


class VaultIndex:
    """The vault's notes, kept current from the paths that changed (incremental intake).

    `full()` walks the features folder (unchanged files come from the cache); `update(paths)`
    re-reads only `paths` — a file watcher's events — and applies the vault-wide rules to
    the verdicts held in memory, so the cost of a change does not grow with the vault's
    file I/O. Both give the same `ScanResult` a fresh `scan_vault` would (property-tested).
    """

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
        """Let `full()` finish note moves a kill cut short (intake only: it writes notes)."""
        self.default_repo = default_repo
        self.features_dir = features_dir
        self.cache = cache if cache is not None else NoteCache(id_pattern=id_pattern)
        self._paths: set[Path] = set()
        self._repos: dict[Path, bool] = {}

    def __repr__(self) -> str:
        return f"VaultIndex({self.root}, notes={len(self._paths)})"

    def full(self) -> ScanResult:
        """Walk the whole features folder (and, with `finish_moves`, repair half-done moves)."""
        features = _features_folder(self.root, self.features_dir)
        paths = list(note_paths(features))
        if self.finish_moves:
            removed = finish_interrupted_moves(paths, self.cache.read, features)
            paths = [path for path in paths if path not in removed]
        self._paths = set(paths)
        self.cache.keep_only(self._paths)
        self._repos.clear()  # a repo may have appeared or gone: ask git again
        for path in paths:
            self.cache.read(path)
        return self._result()

    def update(self, changed: Iterable[Path]) -> ScanResult:
        """Re-read the `changed` paths only (created, edited, moved away or deleted)."""
        features = _features_folder(self.root, self.features_dir)
        for path in changed:
            if _is_note_path(path, features) and self.cache.read(path) is not None:
                self._paths.add(path)
            else:
                self._paths.discard(path)
        self.cache.keep_only(self._paths)
        return self._result()

    def _result(self) -> ScanResult:
        notes: list[Note] = []
        others: list[OtherNote] = []
        for path in sorted(self._paths, key=lambda p: _walk_key(p, self.root)):
            parsed = self.cache.peek(path)
            if isinstance(parsed, ParsedNote):
                notes.append(usable(parsed, vault_root=self.root,
                                    default_repo=self.default_repo, is_repo=self._is_repo))
            elif isinstance(parsed, OtherNote):
                others.append(parsed)
            elif parsed is not None:
                notes.append(parsed)
        return check_vault(notes, self.root, others=others)

    def _is_repo(self, path: Path) -> bool:
        if path not in self._repos:
            self._repos[path] = is_repo(path)
        return self._repos[path]


def _is_note_path(path: Path, features: Path) -> bool:
    """What `note_paths` would yield: a regular, visible `*.md` file below `features`."""
    if not path.is_relative_to(features) or not path.name.endswith(".md"):
        return False
    if any(part.startswith(".") for part in path.relative_to(features).parts):
        return False
    return _regular(path)


def _walk_key(path: Path, root: Path) -> tuple[tuple[int, str], ...]:
    """`os.walk`'s sorted top-down order: a folder's files before its subfolders."""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else path.parts
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
