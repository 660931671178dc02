"""The worktree's total disk use, capped at `sandbox.max_worktree_mb` (issue 16).

There is no portable per-directory quota, so the cap is a check: while a command runs
(about once a second) and after it ends, `DiskWatch.over()` says whether the worktree
holds more than the cap. The answer comes from a walk of the worktree, which is exact
(a walk stops counting as soon as it passes the cap). A full walk of a large worktree
costs real time, so walks are spaced to take at most `WALK_SHARE` of the time: a small
worktree is walked at every look, a large one at least every `1 / WALK_SHARE` times the
CPU time its last walk took (CPU, not wall time: on a loaded machine the wall time of a
walk grows with everything else running, its cost does not). Between walks the answer
is an estimate: the filesystem's used blocks (`statvfs`, one system call) must have
risen since the last walk by enough that the worktree *might* be over the cap. Only
rises count (each look adds what the filesystem gained since the previous one), so
space another process frees does not cancel what the worktree gained; other writers
can cause an extra walk. Space freed elsewhere in the very interval the worktree grows
can still hide that growth from the estimate, until the next walk at the latest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opus.sandbox.limits import MIB

CHECK_EVERY_S = 1.0
"""How often a running command's worktree is checked."""
WALK_SHARE = 0.05
"""The most of one CPU's time walks of one worktree may take (the rest is estimated)."""


def filesystem_used(path: Path) -> int:
    """Bytes in use on the filesystem that holds `path`."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def disk_use(root: Path, stop_above: int | None = None) -> int:
    """Bytes of disk the files below `root` take (hard links once, links not followed).

    With `stop_above`, counting stops once the total passes it (the result is then a
    lower bound that is already over).
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # vanished or unreadable meanwhile: not ours to count
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if stop_above is not None and total > stop_above:
                return total
    return total


@dataclass
class DiskWatch:
    """Whether one worktree holds more than `cap_mb`, checked cheaply and often."""

    root: Path
    cap_mb: int
    clock: Callable[[], float] = time.monotonic
    _known: int | None = field(default=None, init=False)
    """The worktree's size at the last walk."""
    _next_walk: float = field(default=0.0, init=False)
    """When a look walks again whatever the estimate says (clock seconds)."""
    _used_last: int = field(default=0, init=False)
    """The filesystem's used bytes at the last look."""
    _grown: int = field(default=0, init=False)
    """What the filesystem's used bytes rose by since the last walk (rises only)."""

    @property
    def cap_bytes(self) -> int:
        return self.cap_mb * MIB

    @property
    def was_over(self) -> bool:
        """The last walk found the worktree over the cap."""
        return self._known is not None and self._known > self.cap_bytes

    def over(self) -> int | None:
        """The worktree's size in bytes when it is over the cap, else None."""
        try:
            used = filesystem_used(self.root)
        except OSError:
            return None  # the worktree is gone: nothing to cap
        now = self.clock()
        if self._known is not None:
            self._grown += max(0, used - self._used_last)
            self._used_last = used
            due = now > self._next_walk
            if not due and self._known + self._grown <= self.cap_bytes:
                return None
        cpu = time.thread_time()
        size = disk_use(self.root, stop_above=self.cap_bytes)
        cost = time.thread_time() - cpu
        self._known, self._used_last, self._grown = size, used, 0
        self._next_walk = now + cost / WALK_SHARE
        return size if size > self.cap_bytes else None

    def note(self) -> str | None:
        """The line telling the agent the cap was hit (None when under it)."""
        size = self.over()
        if size is None:
            return None
        return (
            f"hit sandbox.max_worktree_mb ({self.cap_mb} MB): the worktree holds over "
            f"{size // MIB} MB; delete build output or caches you do not need (they are not "
            "part of the change), or raise sandbox.max_worktree_mb in opus.toml"
        )
