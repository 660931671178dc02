"""Reading a file that an agent could have written, without being led anywhere else.

Everything under a worktree was last written by an agent. When opus itself reads such a
file (outside the sandbox, with opus's own privileges) a symlink could lead it to a file
the sandbox hides (`~/.ssh/id_ed25519`), and a FIFO or a device could block it forever.
So every component of the path is opened relative to the one before with `O_NOFOLLOW`
(a link anywhere on the way is refused, not followed), the last one also with
`O_NONBLOCK` (opening a FIFO returns at once), and only a regular file is read. The
kind is checked with `lstat` before the open (so a device is never even opened) and
with `fstat` after it (so a swap in between is caught too).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from opus.errors import UnsafePath

MAX_READ_BYTES = 1 << 20
"""Files opus reads from a worktree are small config files; larger ones are refused."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_bytes(root: Path, rel: str, *, max_bytes: int = MAX_READ_BYTES) -> bytes | None:
    """The bytes of `root/rel`, or None when it does not exist.

    Raises `UnsafePath` when `rel` leaves `root`, when any component is a symlink, or
    when the file is not a regular file (FIFO, socket, device, directory) or too large.
    """
    parts = _parts(root, rel)
    try:
        dir_fd = os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unsafe(root, rel, exc) from exc
    try:
        for part in parts[:-1]:
            child = _descend(dir_fd, part, root, rel)
            os.close(dir_fd)
            dir_fd = child
            if dir_fd < 0:
                return None
        return _read_leaf(dir_fd, parts[-1], root, rel, max_bytes)
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def read_text(root: Path, rel: str, *, max_bytes: int = MAX_READ_BYTES) -> str | None:
    """`read_bytes` decoded as UTF-8; None when missing or not UTF-8."""
    data = read_bytes(root, rel, max_bytes=max_bytes)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_plain_dir(path: Path) -> bool:
    """True when `path` is a directory and not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _parts(root: Path, rel: str) -> list[str]:
    pure = PurePosixPath(rel)
    parts = [part for part in pure.parts if part not in ("", ".")]
    if pure.is_absolute() or not parts or ".." in parts:
        raise UnsafePath(f"{rel!r} is not a path inside {root}; opus only reads files there")
    return parts


def _descend(dir_fd: int, part: str, root: Path, rel: str) -> int:
    """Open the directory `part` under `dir_fd`; -1 when it is missing."""
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return -1
    except OSError as exc:
        raise _unsafe(root, rel, exc) from exc


def _read_leaf(dir_fd: int, name: str, root: Path, rel: str, max_bytes: int) -> bytes | None:
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    _require_regular(before, root, rel)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unsafe(root, rel, exc) from exc
    try:
        info = os.fstat(fd)
        _require_regular(info, root, rel)
        if info.st_size > max_bytes:
            raise UnsafePath(
                f"{root / rel} is {info.st_size} bytes, over the {max_bytes} opus reads; "
                "it was not read"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(max_bytes + 1)[:max_bytes]
    finally:
        os.close(fd)


def _require_regular(info: os.stat_result, root: Path, rel: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{root / rel} is a symlink; opus does not follow links out of a "
                         "worktree, so it was not read")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"{root / rel} is a {_kind(info.st_mode)}, not a regular file; "
                         "it was not read")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return name
    return "special file"


def _unsafe(root: Path, rel: str, exc: OSError) -> UnsafePath:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return UnsafePath(f"a component of {root / rel} is a symlink or not a directory; "
                          "opus does not follow links out of a worktree, so it was not read")
    return UnsafePath(f"{root / rel} cannot be read safely: {exc.strerror}")
