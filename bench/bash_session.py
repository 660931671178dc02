"""Figures for the agents' persistent bash session; run `python3 bench/bash_session.py`.

The `bash` tool keeps one shell per stage in the sandbox instead of starting a sandbox per
command. This measures, for the configured sandbox kind (bwrap when installed):

1. a short command (`true`) through `Sandbox.run` (a new sandbox each time) and through
   the session (one sandbox, commands written to its shell), median of N;
2. the session's first command (which starts the shell) and a restart;
3. how long a command past its timeout takes to come back (kill and report);
4. the check before each command for host unix sockets bound since the shell started
   (`uncovered_sockets`), with the host's sockets and with 500 more listed, and a
   command that finds one (restart included).

Prints one line per figure. Nothing here is asserted: tests prove behaviour, this
measures it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from opus.config import SandboxConfig
from opus.engines.bash_session import BashSession
from opus.sandbox import bwrap_available, sandbox_for
from opus.sandbox.sockets import read_unix_table


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextlib.contextmanager
def listening(paths: list[Path]) -> Iterator[None]:
    """Unix sockets bound and listening at `paths` until the block ends."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            server = stack.enter_context(socket.socket(socket.AF_UNIX))
            server.bind(str(path))
            server.listen()
        yield


def socket_figures(session: BashSession, n: int) -> list[str]:
    """The per-command socket check, idle and on a host with 500 more sockets, and a
    command that finds a new one."""
    live = session._live  # the figure is the check alone, not a whole command
    assert live is not None
    check = [timed(live.uncovered_sockets) for _ in range(n)]
    lines = [
        f"socket check, {len(read_unix_table())} host sockets listed: "
        f"median {statistics.median(check) * 1e6:.0f} µs"
    ]
    with (
        tempfile.TemporaryDirectory(prefix="opus-bench-") as host,
        listening([Path(host) / f"s{i}" for i in range(500)]),
    ):
        live.uncovered_sockets()  # the 500 are new once (in the host's /tmp)
        busy = [timed(live.uncovered_sockets) for _ in range(n)]
        lines.append(
            f"socket check, {len(read_unix_table())} listed: "
            f"median {statistics.median(busy) * 1e6:.0f} µs"
        )
    with (
        tempfile.TemporaryDirectory(prefix="opus-bench-", dir="/var/tmp") as project,
        listening([Path(project) / "late.sock"]),
    ):
        found = timed(lambda: session.run("true", timeout_s=30))
    lines.append(f"a command after a reachable socket appeared (restart): {found * 1000:.1f} ms")
    return lines


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
            session.run("true", timeout_s=30)
            sockets = socket_figures(session, args.n)
        finally:
            session.close()
    ms = 1000
    print(f"sandbox kind: {kind}, {args.n} commands per figure")
    fresh_ms, kept_ms = statistics.median(fresh) * ms, statistics.median(kept) * ms
    print(f"`true` via Sandbox.run (new sandbox each): median {fresh_ms:.1f} ms")
    print(f"`true` in the session: median {kept_ms:.2f} ms")
    print(f"session start (first command): {first * ms:.1f} ms; restart: {restart * ms:.1f} ms")
    print(f"a command past a 1 s timeout came back after {timeout * ms:.0f} ms")
    print("\n".join(sockets))


if __name__ == "__main__":
    main()
