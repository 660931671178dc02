"""The resident daemon stays small: the engine's SDK is imported only where jobs run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, processes_with, wait_until


def test_the_daemon_never_imports_the_engine_sdk(ws: Workspace, daemons: Daemons) -> None:
    log = ws.root / "importtime.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "opus", "--config", str(ws.config), "run"],
            cwd=ws.root,
            env=daemons.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            ws.write_fr("FR-1")
            # A whole job ran (its engine is `anthropic`, against the stand-in)...
            ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)
            wait_until(lambda: "opus serving" in log.read_text(errors="replace"), "READY")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    # `-X importtime` reports every import, the fork server's (started after READY, and
    # passed the same flag) included: nothing before READY may be the SDK.
    ready = text.index("opus serving")
    before, after = _imports(text[:ready]), _imports(text[ready:])
    assert "opus.daemon.loop" in before, "importtime did not report"
    assert not [name for name in before if name.split(".")[0] == "anthropic"]
    assert "opus.engines.anthropic_engine" not in before
    # The job ran with the SDK: imported after READY, by the fork server.
    assert "anthropic" in after


def _imports(text: str) -> list[str]:
    return [line.split("|")[-1].strip() for line in text.splitlines()
            if line.startswith("import time:")]


def test_a_restart_starts_the_fork_server_first_and_it_still_dies_with_the_daemon(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    # What is proved is the processes' order and lifetimes: no sandbox, whose start can
    # trip over other processes' sockets on a shared machine.
    ws.write_config(sandbox={"kind": "none"})
    trace = ws.root / "trace.log"
    env = {"OPUS_TRACE": str(trace)}
    gates = [threading.Event(), threading.Event()]
    agency.hold("FR-1", "coder", gates[0])
    ws.write_fr("FR-1")
    first = daemons.start(ws, env=env)
    wait_until(lambda: ("FR-1", "coder") in agency.waiting, "the coder's first call")
    first.stop(signal.SIGKILL, timeout_s=10)
    agency.hold("FR-1", "coder", gates[1])
    gates[0].set()

    # The restart finds FR-1 left running: its fork server starts before the daemon's
    # imports, and the job resumes at the coder.
    second = daemons.start(ws, env=env)
    wait_until(lambda: agency.count("FR-1", "coder") == 2
               and ("FR-1", "coder") in agency.waiting, "the resumed coder's call")
    marks = _marks(trace, second.proc.pid)
    assert marks.index("prestart") < marks.index("fork server started")
    assert marks.index("fork server started") < marks.index("daemon imported")
    server = wait_until(lambda: _children_of(second.proc.pid, "forkserver"), "the fork server")
    job = _children_of(server[0], "")
    assert job, "the job process is the fork server's child"

    # SIGKILL of the daemon alone (not its group): the fork server and the job follow.
    second.proc.kill()
    second.proc.wait(timeout=10)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() and not _zombie(pid)
                               for pid in [*server, *job]) or None,
               "the fork server and the job to end", timeout_s=20)
    gates[1].set()

    daemons.start(ws)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)
    assert ws.completed_stages("FR-1") == ["plan", "code", "test", "review", "deliver"]
    assert agency.count("FR-1", "planner") == 1  # resumed at the coder, twice


def _marks(trace: Path, pid: int) -> list[str]:
    """The milestones process `pid` wrote to the trace, in order."""
    lines = [line.split(" ", 2) for line in trace.read_text().splitlines()]
    return [label for _at, who, label in lines if int(who) == pid]


def _children_of(pid: int, token: str) -> list[int]:
    """Live children of `pid` whose command line contains `token`."""
    return [child for child in processes_with(token)
            if _ppid(child) == pid and not _zombie(child)]


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[1])


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")
