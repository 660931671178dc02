"""Nothing outlives its owner: parent-death signals, a subreaper, and killing a whole tree.

Linux only (`prctl` through ctypes); elsewhere each call is a no-op, and the process
groups that `run_in_group` starts are still killed on timeout and stop.

- `die_with_parent(sig)`: the kernel sends `sig` to this process when the thread that
  forked it ends (the fork server, which ends with the daemon, dies → its job process is
  told).
- `become_subreaper()`: orphans of our descendants are re-parented to us instead of to
  init, so a command that daemonized itself is still found by `descendants()`.
- `descendants(pid)` and `kill_tree(pid, sig)`: every live process below `pid`, from
  `/proc`, whatever process group or session it moved to.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


# Loaded once, at import: no dlopen later, wherever the prctl calls run.
_LIBC = _load_libc()


def _prctl(option: int, value: int) -> bool:
    if _LIBC is None or not hasattr(_LIBC, "prctl"):
        return False
    return bool(_LIBC.prctl(option, value, 0, 0, 0) == 0)


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent ends; False if unsupported."""
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> bool:
    """Adopt the orphans of this process's descendants; False if unsupported."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _parents() -> dict[int, int]:
    """pid → parent pid for every live (non-zombie) process."""
    table: dict[int, int] = {}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2 and fields[0] not in ("Z", "X"):
            table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> list[int]:
    """Live processes below `pid` (children first), found through `/proc`."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(below)
    return found


def signal_all(pids: Iterable[int], groups: Iterable[int], sig: int) -> None:
    """Send `sig` to each process group in `groups` and each process in `pids`."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap_children() -> None:
    """Collect exited children (a subreaper inherits zombies nobody else waits for)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(pid: int, groups: Iterable[int] = (), *, grace_s: float) -> bool:
    """SIGTERM every descendant of `pid` (and `groups`), SIGKILL what is left after `grace_s`.

    `pid` itself is spared (it is usually the caller). True when nothing is left.
    """
    groups = list(groups)
    signal_all(descendants(pid), groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap_children()
        if not descendants(pid):
            break
        time.sleep(0.05)
    signal_all(descendants(pid), groups, signal.SIGKILL)
    reap_children()
    return not descendants(pid)
