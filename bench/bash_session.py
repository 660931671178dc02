"""Figures for the agents' persistent bash session; run `python3 bench/bash_session.py`.

The `bash` tool keeps one shell per stage in the sandbox instead of starting a sandbox per
command. This measures, for the configured sandbox kind (bwrap when installed):

1. a short command (`true`) through `Sandbox.run` (a new sandbox each time) and through
   the session (one sandbox, commands written to its shell), median of N;
2. the session's first command (which starts the shell) and a restart;
3. how long a command past its timeout takes to come back (kill and report).

Prints one line per figure. Nothing here is asserted: tests prove behaviour, this
measures it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opus.config import SandboxConfig
from opus.engines.bash_session import BashSession
from opus.sandbox import bwrap_available, sandbox_for


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="commands per figure")
    args = parser.parse_args()
    kind = "bwrap" if bwrap_available() else "none"
    sandbox = sandbox_for(SandboxConfig(kind=kind))
    with tempfile.TemporaryDirectory(prefix="opus-bench-") as tmp:
        worktree = Path(tmp)
        subprocess.run(["git", "init", "-q", str(worktree)], check=True)
        fresh = [
            timed(lambda: sandbox.run("true", worktree=worktree, timeout_s=30))
            for _ in range(args.n)
        ]
        session = BashSession(sandbox, worktree, writable=True)
        try:
            first = timed(lambda: session.run("true", timeout_s=30))
            kept = [timed(lambda: session.run("true", timeout_s=30)) for _ in range(args.n)]
            session.restart()
            restart = timed(lambda: session.run("true", timeout_s=30))
            timeout = timed(lambda: session.run("sleep 30", timeout_s=1))
        finally:
            session.close()
    ms = 1000
    print(f"sandbox kind: {kind}, {args.n} commands per figure")
    fresh_ms, kept_ms = statistics.median(fresh) * ms, statistics.median(kept) * ms
    print(f"`true` via Sandbox.run (new sandbox each): median {fresh_ms:.1f} ms")
    print(f"`true` in the session: median {kept_ms:.2f} ms")
    print(f"session start (first command): {first * ms:.1f} ms; restart: {restart * ms:.1f} ms")
    print(f"a command past a 1 s timeout came back after {timeout * ms:.0f} ms")


if __name__ == "__main__":
    main()
