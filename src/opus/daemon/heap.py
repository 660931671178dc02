"""Giving back to the system the memory a large transient freed (glibc's `malloc_trim`).

A full walk of a large vault allocates and frees tens of megabytes (the parses, every
note's path, the turn's lists). glibc keeps freed heap pages mapped, so an idle daemon
would keep part of the walk's peak resident: trimming gave back 12 MB of 44 in a process
holding a 50,000-note index, 1.6 MB in the daemon (most of its peak is in Python's own
memory pools). It costs about a millisecond, after each full walk.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


def trim() -> None:
    """Return the C heap's free pages to the system (nothing where malloc is not glibc's)."""
    release = _malloc_trim()
    if release is not None:
        release(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the process's own symbols: libc's, without looking for the library file
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
