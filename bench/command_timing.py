"""What the sandbox benches share: the median wall time of `true` through a runner, and
the rounds taken from the command line (`none_nproc.py`, `sandbox_limits.py`)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from opus.seams import Sandbox


def rounds_arg(default: int = 30) -> int:
    """The rounds asked for as the first argument, else `default`."""
    return int(sys.argv[1]) if len(sys.argv) > 1 else default


def median_ms(runner: Sandbox, worktree: Path, rounds: int) -> float:
    """The median wall time, in ms, of `true` run `rounds` times by `runner` in
    `worktree` (the whole path: spawn, limits, wait, output)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        runner.run("true", worktree=worktree, timeout_s=30)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
