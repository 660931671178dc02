"""Commands that probe the sandbox's limits, shared by the tests that run them."""

from __future__ import annotations

FORKER = (
    "import os, time\n"
    "n = 0\n"
    "try:\n"
    "    while n < 400:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(4)\n"
    "            os._exit(0)\n"
    "        n += 1\n"
    "except BlockingIOError:\n"
    "    pass\n"
    "print('forked', n, flush=True)\n"
)
"""Forks sleeping children until refused (or 400); prints `forked N`."""
