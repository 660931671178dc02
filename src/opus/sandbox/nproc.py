"""How `sandbox.max_processes` counts when there is no bwrap (`sandbox.kind = "none"`).

The kernel counts `RLIMIT_NPROC` per (user namespace, uid): in opus's own namespace that
is every process and thread the opus user runs on the host, so a bare `prlimit
--nproc=N` would refuse a command's first fork whenever the user already runs N, and a
fork bomb in one command would take the count from every other command of the user.
Best first (see designs/sandbox.md, "Limits per kind"):

1. **A user namespace of the command's own** (`unshare --user --map-current-user`, the
   same identity inside): the rlimit then counts this command's processes alone, as it
   does under bwrap. Not for root: the kernel never holds uid 0 to `RLIMIT_NPROC`.
2. **The command's cgroup** (`pids.max`) where the host gives one: exact, root included;
   the user-wide rlimit is then left out, so it cannot refuse a fork by itself.
3. **What the user runs at the command's start plus N**: approximate. Processes the
   user starts or ends elsewhere while the command runs move the cap; a runaway command
   can hold back other commands of the same user.
4. Root without a cgroup: not enforced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from enum import Enum

PROBE_TIMEOUT_S = 5.0


class Counting(Enum):
    """What holds a command's process count (`sandbox.kind = "none"`)."""

    NAMESPACE = "namespace"
    CGROUP = "cgroup"
    USER = "user"
    NONE = "none"

    def describe(self, max_processes: int) -> str:
        """One clause for `opus doctor`."""
        return {
            Counting.NAMESPACE: (
                f"{max_processes} processes per command, counted in a user namespace of "
                "its own (unshare), so the user's other processes neither count nor get "
                "held back"
            ),
            Counting.CGROUP: (
                f"{max_processes} processes per command by its cgroup's pids.max (no "
                "user-wide RLIMIT_NPROC)"
            ),
            Counting.USER: (
                "the process rlimit counts all the opus user's processes and threads: it is "
                f"set at what the user runs at each command's start plus {max_processes}, "
                "which drifts as the user's other processes come and go (unshare cannot "
                "make a user namespace here)"
            ),
            Counting.NONE: (
                "sandbox.max_processes is NOT enforced: the kernel does not hold root to "
                "RLIMIT_NPROC and there is no writable cgroup"
            ),
        }[self]


def counting(*, has_cgroup: bool) -> Counting:
    """How a command's processes are counted, `has_cgroup` when it runs in its own."""
    if os.geteuid() != 0 and own_namespace_argv() is not None:
        return Counting.NAMESPACE
    if has_cgroup:
        return Counting.CGROUP
    return Counting.USER if os.geteuid() != 0 else Counting.NONE


_lock = threading.Lock()
_probed: dict[int, list[str] | None] = {}


def own_namespace_argv() -> list[str] | None:
    """`unshare --user --map-current-user --` when it works here (tried once per uid)."""
    uid = os.geteuid()
    with _lock:
        if uid not in _probed:
            _probed[uid] = _probe()
        return _probed[uid]


def _probe() -> list[str] | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    argv = [unshare, "--user", "--map-current-user", "--"]
    try:
        done = subprocess.run(
            [*argv, "/bin/sh", "-c", "id -u"], capture_output=True, text=True,
            timeout=PROBE_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    # The same uid inside, or files the command writes would belong to someone else.
    return argv if done.returncode == 0 and done.stdout.strip() == str(os.geteuid()) else None


def user_processes(uid: int) -> int:
    """How many processes and threads `uid` runs now (what `RLIMIT_NPROC` counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue  # it ended meanwhile
    return count
