"""The worktree's total size cap (`sandbox.max_worktree_mb`), on real files and commands."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.sandbox import sandbox_for
from opus.sandbox.disk import DiskWatch, disk_use
from tests.sandbox.conftest import needs_bwrap

MIB = 1024 * 1024
CAP = "hit sandbox.max_worktree_mb (8 MB)"


def _write(path: Path, mib: int) -> None:
    path.write_bytes(os.urandom(mib * MIB))


def test_disk_use_counts_real_blocks_once_and_stops_past_a_bound(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "a.bin", 2)
    _write(tmp_path / "sub" / "b.bin", 3)
    os.link(tmp_path / "a.bin", tmp_path / "sub" / "same.bin")  # counted once
    (tmp_path / "link").symlink_to("/usr")  # not followed
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(100 * MIB)  # no blocks
    used = disk_use(tmp_path)
    assert 5 * MIB <= used < 6 * MIB
    assert disk_use(tmp_path, stop_above=1 * MIB) > 1 * MIB


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem few others write to (tmpfs /dev/shm when there is one):
    the watch's estimate reads the whole filesystem's use, and space other processes free
    on a busy disk in the same moment could hide growth from it (by design, until the
    next walk)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="opus-disk-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def frozen() -> float:
    """A clock that never moves: a watch on it walks only when its estimate says so."""
    return 0.0


def test_the_watch_walks_only_when_the_filesystem_grew_enough(quiet: Path) -> None:
    watch = DiskWatch(quiet, cap_mb=8, clock=frozen)
    _write(quiet / "a.bin", 2)
    assert watch.over() is None  # first look: a walk
    walked = watch._known
    (quiet / "a.bin").unlink()  # the worktree shrinks: no walk sees it
    assert watch.over() is None and watch._known == walked
    _write(quiet / "a.bin", 2)
    for n in range(4):
        _write(quiet / f"more{n}.bin", 2)
    size = watch.over()
    assert size is not None and size > 8 * MIB
    note = watch.note()
    assert note is not None and note.startswith(CAP)
    for path in quiet.glob("more*.bin"):
        path.unlink()
    assert watch.over() is None


def test_space_freed_elsewhere_does_not_hide_the_worktree_growing(quiet: Path) -> None:
    worktree, elsewhere = quiet / "wt", quiet / "elsewhere.bin"
    worktree.mkdir()
    _write(elsewhere, 16)  # on the same filesystem, outside the worktree
    watch = DiskWatch(worktree, cap_mb=8, clock=frozen)
    assert watch.over() is None  # first look: a walk
    elsewhere.unlink()  # another process frees more than the worktree will gain
    assert watch.over() is None
    for n in range(5):
        _write(worktree / f"f{n}.bin", 2)
    size = watch.over()
    assert size is not None and size > 8 * MIB


def test_a_walk_is_due_after_a_share_of_its_cost(tmp_path: Path) -> None:
    now = [0.0]
    watch = DiskWatch(tmp_path, cap_mb=8, clock=lambda: now[0])
    _write(tmp_path / "a.bin", 2)
    assert watch.over() is None
    assert 0 < watch._next_walk < 1  # a tiny worktree: walked again at the next look
    (tmp_path / "a.bin").unlink()
    now[0] = 1.0
    assert watch.over() is None and watch._known == 0  # walked, though nothing grew


def _capped(kind: str) -> SandboxConfig:
    return SandboxConfig(kind=kind, max_worktree_mb=8, max_file_mb=100)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_command_that_fills_the_worktree_is_stopped_and_told(kind: str, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    started = time.monotonic()
    # Many files, each under max_file_mb, without end: only the total cap stops it.
    result = sandbox_for(_capped(kind)).run(
        "i=0; while true; do head -c 1M /dev/urandom > f$i; i=$((i+1)); sleep 0.02; done",
        worktree=worktree,
        timeout_s=120,
    )
    elapsed = time.monotonic() - started
    print(f"{kind}: stopped after {elapsed:.1f}s, {disk_use(worktree) // MIB} MB written")
    assert not result.timed_out and result.exit_code != 0
    assert result.output.rstrip().endswith(
        "or raise sandbox.max_worktree_mb in opus.toml"
    ), result.output[-400:]
    assert CAP in result.output


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_command_that_ends_over_the_cap_is_a_command_error(kind: str, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    sandbox = sandbox_for(_capped(kind))
    fits = sandbox.run("head -c 2M /dev/urandom > small", worktree=worktree, timeout_s=60)
    assert fits.exit_code == 0 and "max_worktree_mb" not in fits.output
    over = sandbox.run(
        "for i in 1 2 3 4; do head -c 3M /dev/urandom > big$i; done", worktree=worktree,
        timeout_s=60,
    )
    assert over.exit_code == 1 and CAP in over.output
    # Started over the cap, a slow clean-up is not stopped midway, and ends under it.
    cleaned = sandbox.run("sleep 2.5; rm big*", worktree=worktree, timeout_s=60)
    assert cleaned.exit_code == 0 and "max_worktree_mb" not in cleaned.output
    again = sandbox.run(
        "i=0; while true; do head -c 1M /dev/urandom > f$i; i=$((i+1)); sleep 0.02; done",
        worktree=worktree, timeout_s=120,
    )
    assert not again.timed_out and CAP in again.output  # under it again: watched again
