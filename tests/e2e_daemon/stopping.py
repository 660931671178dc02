"""Agents for the stop tests: a `command` engine whose coder sleeps, marked by a token.

The token is the fractional part of the sleeps (`sleep 61.<token>`, spelled so that the
script's own text does not contain it) and the last argument of the agent's shell, so
every process of the coder's stage — inside bwrap too — is found in `/proc` by it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.e2e_daemon.harness import processes_matching, processes_with

PLAN = '{"summary": "s", "steps": [{"title": "t", "postcondition": "p"}]}'
REVIEW = '{"verdict": "approve", "summary": "ok", "comments": []}'


def token() -> str:
    return f"{random.randrange(10**8):08d}"


def agent(coder: str, mark: str = "none") -> dict[str, object]:
    """`[agents]` for the `command` engine: quick planner and reviewer, `coder` as given."""
    script = (
        f"if [ \"$1\" = planner ]; then printf '%s' '{PLAN}' > \"$2\"; exit 0; fi; "
        f"if [ \"$1\" = reviewer ]; then printf '%s' '{REVIEW}' > \"$2\"; exit 0; fi; "
        f"{coder}"
    )
    return {"engine": "command", "command": ["sh", "-c", script, "agent", "{role}",
                                             "{output_file}", f"mark-{mark}"]}


def fast_coder(fr_id: str) -> str:
    return f"echo {fr_id} > {fr_id.lower()}.txt"


def sleeping_coder(mark: str) -> str:
    """Sleeps; a SIGTERM ends it."""
    return f"m=61.; sleep ${{m}}{mark}; echo work > work.txt"


def stubborn_coder(mark: str) -> str:
    """Ignores SIGTERM (so only SIGKILL ends it), with a grandchild that left its session."""
    return (f"trap '' TERM; m=61.; setsid sleep ${{m}}{mark} & sleep ${{m}}{mark}; "
            "echo work > work.txt")


def sleeps(mark: str) -> list[int]:
    """The coder's sleeps."""
    return processes_with(f"61.{mark}")


def stage_processes(mark: str) -> list[int]:
    """The coder's sleeps and its shell."""
    def ours(cmdline: str) -> bool:
        shell = f"mark-{mark}" in cmdline and " coder " in cmdline
        return shell or f"61.{mark}" in cmdline

    return processes_matching(ours)


def job_processes(root: Path) -> list[int]:
    """Job processes started from the workspace `root`: the children of its fork server."""
    servers = set(processes_with("multiprocessing.forkserver"))
    found = []
    for pid in servers:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat[stat.rfind(")") + 2 :].split()[1])
            if parent in servers and Path(os.readlink(f"/proc/{pid}/cwd")) == root:
                found.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def fork_servers(root: Path) -> list[int]:
    """The fork servers (and their jobs) of daemons started from `root`."""
    found = []
    for pid in processes_with("multiprocessing.forkserver"):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == root:
                found.append(pid)
        except OSError:
            continue
    return found
