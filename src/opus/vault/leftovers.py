"""The hidden files a killed note writer leaves beside the notes, and their removal.

Every write of a note goes through a hidden file in the note's own folder: a temp file
that is renamed or exchanged into place (`write.replace_if_unchanged`, `create_note`),
or, while a half-done move is repaired, the stale name renamed aside (`interrupted`). A
writer killed between making that file and removing it leaves it among the user's notes.

The temp files carry their writer in their name, `.<note>.<pid>@<host>.<random>.opus-tmp`,
so that intake's full walk can remove those whose writer is gone (a pid of this host that
no longer runs) without racing a live writer on this host or another one sharing the
vault. A temp file holds either the new text opus was about to place (the note itself
still has its old text, and opus writes again) or, after the exchange, the text it
displaced; neither is the only copy of a user's words, except when a save lands in the
microseconds between the exchange and the compare. Untagged or foreign temp files are
removed once they are an hour old: no write lasts that long.

A stale name renamed aside is a second name of a note whose other name holds it, and
goes; if it turns out to be the only name of its file (a user's save raced the repair),
it is put back under its own name, or kept and logged when that name is taken.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from opus.pids import pid_alive

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".opus-tmp"
STALE_SUFFIX = ".opus-stale"
LEFTOVER_SUFFIXES = (TEMP_SUFFIX, STALE_SUFFIX)
ABANDONED_AFTER_S = 3600.0
_WRITER = re.compile(r"\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]*)\.[0-9a-f]+\.opus-tmp$")


def temp_prefix(note: Path) -> str:
    """The start of a temp file's name for a write of `note`: hidden, naming its writer."""
    return f".{note.name}.{os.getpid()}@{_host()}."


def create_temp(note: Path, data: bytes) -> Path:
    """A new hidden temp file beside `note` holding `data` (fsynced; its mode follows the
    umask, as a file a user makes would), named by `temp_prefix`."""
    while True:
        tmp = note.with_name(f"{temp_prefix(note)}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue  # 32 random bits taken by this very process: draw again
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def stale_name(note: Path) -> Path:
    """The hidden name a stale second name of `note` is renamed to before its removal."""
    return note.with_name(f".{note.name}{STALE_SUFFIX}")


def remove_leftovers(paths: Iterable[Path], *, now: float | None = None) -> list[Path]:
    """Remove the leftovers among `paths` (hidden files of the walk's note folders whose
    names end in `LEFTOVER_SUFFIXES`; others are ignored) that no live writer holds; the
    paths removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in paths:
        if not (path.name.startswith(".") and path.name.endswith(LEFTOVER_SUFFIXES)):
            continue
        try:
            done = (_remove_temp(path, now) if path.name.endswith(TEMP_SUFFIX)
                    else _settle_stale(path))
        except OSError as exc:
            log.warning("cannot remove %s, left by an interrupted write: %s", path, exc)
            continue
        if done:
            removed.append(path)
    if removed:
        log.warning("removed %d file(s) left by interrupted note writes: %s",
                    len(removed), ", ".join(str(path) for path in removed))
    return removed


def _remove_temp(path: Path, now: float) -> bool:
    match = _WRITER.search(path.name)
    if match is not None and match["host"] == _host() and int(match["pid"]) != os.getpid():
        abandoned = not pid_alive(int(match["pid"]))
    else:
        try:
            abandoned = now - path.lstat().st_mtime > ABANDONED_AFTER_S
        except FileNotFoundError:
            return False
    if abandoned:
        path.unlink(missing_ok=True)
    return abandoned


def _settle_stale(hidden: Path) -> bool:
    """Unlink a stale name that is a second name; put back one that is the only name."""
    try:
        st = hidden.lstat()
    except FileNotFoundError:
        return False
    if st.st_nlink > 1:
        hidden.unlink()
        return True
    own = hidden.with_name(hidden.name[1:-len(STALE_SUFFIX)])
    try:
        os.link(hidden, own)
    except FileExistsError:
        log.error("%s is a note's only copy and %s is taken: kept under the hidden name; "
                  "compare the two and keep the one you want", hidden, own)
        return False
    hidden.unlink()
    log.warning("put %s back: a repair was interrupted before it could", own)
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())[:32]
