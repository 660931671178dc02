"""Waking a running daemon at once after a command changed what it should do.

A command that changes state (retry, cancel, pause, resume, an answer) rewrites
`<state_dir>/wake`; the daemon watches that file next to the vault, so the change takes
effect within a second instead of at the next poll. Waking is best effort: a daemon
that misses it still acts at its next poll.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

WAKE_FILE = "wake"


def wake_path(state_dir: Path) -> Path:
    return state_dir / WAKE_FILE


def wake(state_dir: Path) -> None:
    """Tell any daemon using `state_dir` to run a loop turn now."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = wake_path(state_dir)
        tmp = path.with_name(f".{WAKE_FILE}.{os.getpid()}")
        tmp.write_text(f"{time.time():.6f}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or missing state dir: the daemon acts at its next poll
