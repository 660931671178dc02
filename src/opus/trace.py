"""Milestones of a process, for benchmarks: with `OPUS_TRACE=FILE` set, `mark(label)`
appends `<unix time> <pid> <label>` to FILE (one `write`, so processes can share it);
without it, `mark` does nothing. `bench/lean.py` uses it to show where a restart's time
goes (designs/lean.md)."""

from __future__ import annotations

import os
import time

VARIABLE = "OPUS_TRACE"


def mark(label: str) -> None:
    """Note that this process reached `label` now (when tracing is on)."""
    path = os.environ.get(VARIABLE)
    if not path:
        return
    line = f"{time.time():.4f} {os.getpid()} {label}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
