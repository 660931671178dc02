"""The vault index's verdicts kept across restarts, so a start does not parse every note.

A hint, never the truth: a note is taken from the file only when its stat key
`(mtime_ns, size, inode, ctime_ns)` is the one recorded, and the file is used only when
its format, the parsing code and the settings the parse depends on are the ones running
now; anything else (absent, unreadable, truncated, damaged, another version) and every
note is parsed, as without a cache. The change time is in the key because nobody can
set it: a `touch -d` after an in-place edit of the same size, or a `chmod` that makes an
unreadable note readable, still changes the key.

Only the index's brief verdicts are stored (`VaultIndex` keeps no more of most notes): a
note that is not an FR by its reason, a valid FR out of flight as its `Settled` record.
Notes whose full record the index keeps (planned, in progress, invalid) are parsed at
every start; they are few.

**Racy notes.** A note changed within the filesystem's timestamp granularity of being
read could change again without its key changing. As git's racy-index rule, a verdict
is stored only when the note's mtime and ctime are `RACY_S` older than the moment it was
read (`settled_before`); a note saved just before it was read is parsed again at the
next start.

**Format** (designs/vault.md): three lines — a JSON header (format, a
fingerprint of the code and the versions the parse depends on, the scope: vault root,
features folder, `id_pattern`), a JSON array of `[path, mtime_ns, size, inode,
ctime_ns, verdict]` (the verdict: the reason text, or `Settled.plain()`), and the
sha256 of the two lines before it. JSON of plain lists: no class is ever loaded from
the file, it loads in ~0.1 s for 50,000 notes (`marshal` was no faster here), and every
value is type-checked before it becomes a verdict. ASCII (a file name that is not UTF-8
is escaped). Written as a temp file, fsynced, renamed over the old one, mode 600.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from opus.vault.settled import Settled
from opus.vault.write import fsync_dir

log = logging.getLogger(__name__)

CACHE_NAME = "vault-cache.json"
"""The daemon's cache file, in its state dir."""
FORMAT = 1
RACY_S = 2.0
"""How much older than its read a note's mtime and ctime must be for its verdict to be
stored: above every filesystem's timestamp granularity (FAT's is 2 s)."""
CHUNK = 2000
"""Entries encoded per `json.dumps` when writing (bounds the transient memory)."""

Key = tuple[int, int, int, int]
"""`(mtime_ns, size, inode, ctime_ns)`."""
Brief = str | Settled
"""A note's own verdict as stored: a reason (not an FR) or a settled FR."""
Entry = tuple[str, Key, Brief]


def settled_before(st: os.stat_result, read_ns: int, racy_s: float = RACY_S) -> bool:
    """The note's last change (content or metadata) is `racy_s` older than `read_ns`
    (wall clock, taken after the stat and before the read): a later change cannot keep
    its stat key, so the verdict read may be stored."""
    return max(st.st_mtime_ns, st.st_ctime_ns) < read_ns - int(racy_s * 1e9)


class Hints:
    """The verdicts of one cache file, taken note by note during the first walk."""

    def __init__(self, notes: dict[str, list[object]], origin: Path) -> None:
        self._notes = notes
        self._origin = origin
        self._size = len(notes)
        self.used = 0

    def __len__(self) -> int:
        """How many notes the file held (a damaged entry drops the rest, not this)."""
        return self._size

    def take(self, rel: str, st: os.stat_result) -> Brief | None:
        """The stored verdict of the note at `rel` if it was stored for exactly this
        stat key; None otherwise (the note must be parsed)."""
        entry = self._notes.get(rel)
        if entry is None or entry[1:5] != [st.st_mtime_ns, st.st_size, st.st_ino,
                                           st.st_ctime_ns]:
            return None
        verdict = entry[5]
        try:
            brief = sys.intern(verdict) if isinstance(verdict, str) else Settled.from_plain(verdict)
        except ValueError as exc:
            log.info("vault index cache %s ignored from %s on: %s", self._origin, rel, exc)
            self._notes.clear()
            return None
        self.used += 1
        return brief


class ParseCache:
    """One cache file for one scope (vault root, features folder, id pattern)."""

    def __init__(self, path: Path, *, scope: dict[str, str]) -> None:
        self.path = path
        self.scope = scope
        self._unwritable: str | None = None
        """Why the last write failed (logged when it changes, not at every walk)."""

    def __repr__(self) -> str:
        return f"ParseCache({self.path})"

    def load(self) -> Hints:
        """The stored verdicts; none (logged once) when the file is absent, unreadable,
        damaged, or written for another code, version or scope."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Hints({}, self.path)
        except OSError as exc:
            log.info("vault index cache %s not read (%s): every note is parsed",
                     self.path, exc.strerror)
            return Hints({}, self.path)
        try:
            notes = self._decode(data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.info("vault index cache %s ignored (%s): every note is parsed", self.path, exc)
            return Hints({}, self.path)
        return Hints(notes, self.path)

    def _decode(self, data: bytes) -> dict[str, list[object]]:
        payload, _, digest = data.rstrip(b"\n").rpartition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise ValueError("damaged: its checksum does not match")
        head, _, body = payload.partition(b"\n")
        header = json.loads(head)
        wanted = _header(self.scope)
        if not isinstance(header, dict) or {k: header.get(k) for k in wanted} != wanted:
            raise ValueError("written for another version of opus or other settings")
        entries = json.loads(body)
        if not isinstance(entries, list):
            raise ValueError("damaged: no list of notes")
        notes = {entry[0]: entry for entry in entries}
        if not all(isinstance(rel, str) and isinstance(entry, list) and len(entry) == 6
                   for rel, entry in notes.items()):
            raise ValueError("damaged: a malformed note entry")
        return notes

    def save(self, entries: Iterable[Entry]) -> int | None:
        """Replace the file with `entries` (atomically: temp file, fsync, rename, mode
        600); how many were written, None when the file could not be written (logged,
        never raised: the cache is only a hint)."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                count = _write(out, _header(self.scope), entries)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            if str(exc) != self._unwritable:
                log.info("vault index cache %s not written: %s", self.path, exc)
            self._unwritable = str(exc)
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            return None
        self._unwritable = None
        return count


def _write(out: BinaryIO, header: dict[str, object], entries: Iterable[Entry]) -> int:
    """Write the three lines (see the module) to `out`, `CHUNK` entries at a time; how
    many entries. ASCII only: a file name that is not UTF-8 (a lone surrogate) is
    escaped by JSON and read back as the same text."""
    digest = hashlib.sha256()
    count = 0

    def put(text: str) -> None:
        data = text.encode()
        digest.update(data)
        out.write(data)

    put(json.dumps(header, separators=(",", ":")) + "\n[")
    for chunk in _chunks(entries):
        text = json.dumps(chunk, separators=(",", ":"))[1:-1]
        put(("," if count else "") + text)
        count += len(chunk)
    put("]")
    out.write(b"\n" + digest.hexdigest().encode() + b"\n")
    return count


def _chunks(entries: Iterable[Entry]) -> Iterator[list[list[object]]]:
    chunk: list[list[object]] = []
    for rel, key, brief in entries:
        chunk.append([rel, *key, brief if isinstance(brief, str) else brief.plain()])
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _header(scope: dict[str, str]) -> dict[str, object]:
    return {"format": FORMAT, "code": code_fingerprint(), "scope": scope}


@functools.cache
def code_fingerprint() -> str:
    """The sha256 of what a note's verdict depends on besides its bytes and the scope:
    the source of `opus.vault` and `opus.domain`, and the versions of opus, Python and
    PyYAML (and which YAML loader). opus's version alone would not tell two builds of
    one version apart."""
    import yaml

    from opus import __version__
    from opus.vault.yamlio import NoteLoader

    digest = hashlib.sha256(
        f"{FORMAT}|{__version__}|{sys.version}|{yaml.__version__}|{NoteLoader.__mro__[1]}"
        .encode())
    here = Path(__file__).resolve().parent
    for source in [*sorted(here.glob("*.py")), here.parent / "domain.py"]:
        try:
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        except OSError:
            digest.update(f"{source.name} unreadable {os.getpid()}".encode())  # never equal
    return digest.hexdigest()
