"""Reading a whole vault: every `*.md` under `10_features/`, parsed once per file version."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opus.errors import NoteError
from opus.git import is_repo
from opus.vault.checks import Note, ScanResult, check_vault
from opus.vault.note import InvalidNote, ParsedNote, read_note, resolve_repo

FEATURES_DIR = "10_features"
_Key = tuple[int, int, int]


@dataclass
class NoteCache:
    """Parsed notes keyed by path and (mtime_ns, size, inode): unchanged files are not re-read.

    The daemon keeps one across scans. Our own atomic writes replace the inode, so a
    write-back is always seen even when it lands within the clock's resolution.
    """

    _entries: dict[Path, tuple[_Key, ParsedNote | InvalidNote]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def read(self, path: Path) -> ParsedNote | InvalidNote | None:
        """The parsed note at `path`, from the cache when unchanged; None if it vanished."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._entries.get(path)
        if cached is not None and cached[0] == key:
            self.hits += 1
            return cached[1]
        self.misses += 1
        parsed = _read_file(path)
        if parsed is not None:
            self._entries[path] = (key, parsed)
        return parsed

    def keep_only(self, paths: set[Path]) -> None:
        """Forget notes that are gone, so the cache does not grow forever."""
        for path in set(self._entries) - paths:
            del self._entries[path]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"NoteCache(notes={len(self)}, hits={self.hits}, misses={self.misses})"


def _read_file(path: Path) -> ParsedNote | InvalidNote | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return InvalidNote(path, f"cannot read the note ({exc.strerror}); check its permissions")
    return read_note(path, data)


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
    root: Path, *, default_repo: Path | None, cache: NoteCache | None = None
) -> ScanResult:
    """Parse and validate every FR note of the vault at `root` (SPEC §1).

    Raises `NoteError` when `root` has no `10_features/` folder.
    """
    features = root / FEATURES_DIR
    if not features.is_dir():
        raise NoteError(
            f"the vault at {root} has no {FEATURES_DIR}/ folder; "
            "run `opus init` or fix vault.path in opus.toml"
        )
    cache = cache if cache is not None else NoteCache()
    paths = list(note_paths(features))
    cache.keep_only(set(paths))
    check_repo = functools.cache(is_repo)  # one git call per repo per scan
    notes: list[Note] = []
    for path in paths:
        parsed = cache.read(path)
        if isinstance(parsed, ParsedNote):
            notes.append(
                resolve_repo(
                    parsed, vault_root=root, default_repo=default_repo, is_repo=check_repo
                )
            )
        elif parsed is not None:
            notes.append(parsed)
    return check_vault(notes, root)
