"""Repairing what a killed git leaves in a repository's worktree admin dirs.

A SIGKILL inside `git worktree add` leaves `.git/worktrees/<name>/` half made: locked
with the reason `initializing` (git removes that lock only when the add completes),
sometimes without `commondir`, `gitdir` or `HEAD`. Git then refuses to prune the locked
entry, `git worktree list` can fail on the broken one, and a worktree directory whose
checkout stopped half-way looks reusable. A kill inside any other git command leaves
`index.lock`/`HEAD.lock` files that make every later command in that worktree fail.

`repair_admin` runs under opus's per-repository worktree lock (see `worktree.py`), so
no `worktree add` by opus on this host is in flight: an `initializing` lock there has a
dead owner. It removes such half-made entries and those missing a file git needs, then
`git worktree prune` forgets entries whose worktree is gone. `drop_stale_locks` removes
the lock files of one job's own worktree; only the job's worker (which holds its lease)
runs git there, so when that worker starts, any lock in it belongs to a dead process.
Entries a person locked with their own reason are left alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

GIT_IN_PROGRESS = "initializing"
NEEDED = ("gitdir", "commondir", "HEAD")
LOCK_FILES = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock", "config.worktree.lock")


def repair_admin(common_dir: Path) -> list[str]:
    """Remove half-made or broken worktree entries under `common_dir/worktrees`.

    Returns one line per entry removed (for the job log).
    """
    admin = common_dir / "worktrees"
    if not admin.is_dir():
        return []
    repaired = []
    for entry in sorted(admin.iterdir()):
        problem = entry_problem(entry)
        if problem is None:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        repaired.append(f"removed worktree entry {entry.name}: {problem}")
    return repaired


def entry_problem(entry: Path) -> str | None:
    """Why the worktree admin entry `entry` is residue, or None when it is sound."""
    if entry.is_symlink() or not entry.is_dir():
        return "not a directory"
    if _read(entry / "locked") == GIT_IN_PROGRESS:
        return "half made (git was killed inside `worktree add`)"
    missing = [name for name in NEEDED if not (entry / name).is_file()]
    if missing:
        return f"no {', '.join(missing)}"
    if not _read(entry / "gitdir"):
        return "empty gitdir"
    return None


def drop_stale_locks(admin_entry: Path) -> list[str]:
    """Remove git lock files a killed command left in one worktree's admin entry."""
    dropped = []
    for name in LOCK_FILES:
        lock = admin_entry / name
        if lock.is_file():
            lock.unlink(missing_ok=True)
            dropped.append(f"dropped stale {lock}")
    return dropped


def drop_stale_ref_lock(common_dir: Path, branch: str) -> list[str]:
    """Remove `refs/heads/<branch>.lock` left by a kill while git created the branch."""
    lock = common_dir / "refs" / "heads" / f"{branch}.lock"
    if lock.is_file():
        lock.unlink(missing_ok=True)
        return [f"dropped stale {lock}"]
    return []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
