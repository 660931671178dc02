"""Reading a whole vault: every `*.md` under `10_features/`, parsed once per file version."""

from __future__ import annotations

import functools
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opus.domain import FRStatus
from opus.errors import NoteError
from opus.git import is_repo
from opus.vault.checks import Note, ScanResult, check_vault
from opus.vault.fields import DEFAULT_ID_PATTERN
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
    features = root / features_dir
    if not features.is_dir():
        raise NoteError(
            f"the vault at {root} has no {features_dir}/ folder; "
            "run `opus init` or fix vault.path / vault.features_dir in opus.toml"
        )
    if cache is None or cache.id_pattern != id_pattern:
        cache = cache if cache is not None and not len(cache) else NoteCache()
        cache.id_pattern = id_pattern
    paths = list(note_paths(features))
    cache.keep_only(set(paths))
    check_repo = functools.cache(is_repo)  # one git call per repo per scan
    notes: list[Note] = []
    others: list[OtherNote] = []
    for path in paths:
        parsed = cache.read(path)
        if isinstance(parsed, ParsedNote):
            notes.append(
                usable(
                    parsed, vault_root=root, default_repo=default_repo, is_repo=check_repo
                )
            )
        elif isinstance(parsed, OtherNote):
            others.append(parsed)
        elif parsed is not None:
            notes.append(parsed)
    return check_vault(notes, root, others=others)


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
