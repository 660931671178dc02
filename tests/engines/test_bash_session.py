"""The `bash` tool's persistent session, in the real sandbox (bwrap where available)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.domain import Role
from opus.engines.bash_session import BashSession, quote
from opus.engines.tools import Toolbox
from opus.sandbox import bwrap_available, sandbox_for
from opus.sandbox.cgroups import PREFIX, find_cgroup_host
from opus.seams import Sandbox

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bwrap is not installed")


def bash(toolbox: Toolbox, command: str) -> str:
    return toolbox.execute("bash", {"command": command}).result.content


@pytest.fixture
def coder(repo: Path, sandbox: Sandbox) -> Toolbox:
    toolbox = Toolbox(Role.CODER, repo, sandbox, command_timeout_s=20)
    yield toolbox
    toolbox.close()


def test_state_carries_over_between_calls(coder: Toolbox, repo: Path) -> None:
    assert bash(coder, "pwd") == f"exit code: 0\n{repo}\n"
    bash(coder, 'cd src && export GREETING=hello && shout() { echo "$1!"; }')
    assert bash(coder, "pwd") == f"exit code: 0\n{repo / 'src'}\n"
    assert bash(coder, 'echo "$GREETING"; shout hey') == "exit code: 0\nhello\nhey!\n"
    assert "calc.py" in bash(coder, "ls")
    # A non-zero exit or a syntax error keeps the session and its state.
    assert bash(coder, "false").startswith("exit code: 1")
    assert bash(coder, "if then fi").startswith("exit code: 2")
    assert bash(coder, 'echo "$GREETING"') == "exit code: 0\nhello\n"


def test_restart_starts_a_fresh_shell_in_the_worktree_root(coder: Toolbox, repo: Path) -> None:
    bash(coder, "cd src; export KEPT=1")
    restarted = coder.execute("bash", {"restart": True}).result
    assert not restarted.is_error and "restarted" in restarted.content
    assert bash(coder, 'pwd; echo "kept=${KEPT:-no}"') == f"exit code: 0\n{repo}\nkept=no\n"


def test_timeout_kills_the_session_and_what_it_started(coder: Toolbox, repo: Path) -> None:
    quick = Toolbox(Role.CODER, repo, coder.bash.session.sandbox, command_timeout_s=1)
    try:
        bash(quick, "cd src; export KEPT=1")
        started = time.monotonic()
        child = _unique_sleep()
        result = bash(quick, f"{child} & echo started; sleep 30")
        elapsed = time.monotonic() - started
        print(f"timed-out command returned after {elapsed:.2f}s")
        assert result.startswith("exit code: 124 (killed after the 1s command timeout")
        assert "restarted" in result and "started" in result
        assert elapsed < 15
        assert not _running(child), "the background child was killed with the session"
        assert bash(quick, 'pwd; echo "kept=${KEPT:-no}"') == f"exit code: 0\n{repo}\nkept=no\n"
    finally:
        quick.close()


def test_exit_ends_the_shell_and_the_next_command_gets_a_new_one(
    coder: Toolbox, repo: Path
) -> None:
    bash(coder, "cd src")
    result = bash(coder, "echo bye; exit 3")
    assert result.startswith("exit code: 3 (the shell exited") and "bye" in result
    assert bash(coder, "pwd") == f"exit code: 0\n{repo}\n"


def test_commands_cannot_read_the_sessions_input(coder: Toolbox) -> None:
    assert bash(coder, 'cat; read -r line; echo "read=${line:-nothing}"') == (
        "exit code: 0\nread=nothing\n"
    )
    assert bash(coder, "echo still here") == "exit code: 0\nstill here\n"


def test_any_text_survives_quoting(coder: Toolbox, repo: Path) -> None:
    text = "héllo \"quoted\" 'single' $HOME `tick` \\back\\ tab\tend"
    command = f"cat > quoted.txt <<'EOF'\n{text}\nEOF\nprintf 'no newline'"
    assert bash(coder, command) == "exit code: 0\nno newline"
    assert (repo / "quoted.txt").read_text() == text + "\n"
    assert quote("a b") == "$'a b'" and quote("'") == "$'\\x27'"


def test_large_output_is_capped_and_the_session_goes_on(coder: Toolbox) -> None:
    result = bash(coder, "seq 1 200000")
    assert result.startswith("exit code: 0") and "characters cut" in result
    assert result.rstrip().endswith("200000")
    assert bash(coder, "echo next") == "exit code: 0\nnext\n"


@needs_bwrap
def test_session_keeps_the_sandbox_guarantees(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    sandbox = sandbox_for(SandboxConfig(kind="bwrap"))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        session = BashSession(sandbox, repo, writable=True)
        try:
            env = session.run("env", timeout_s=20).output
            assert "sk-secret" not in env and "ghp-secret" not in env
            assert session.run("touch in-worktree", timeout_s=20).exit_code == 0
            assert (repo / "in-worktree").exists()
            assert session.run(f"touch {outside}/planted", timeout_s=20).exit_code != 0
            assert not (outside / "planted").exists()
            connect = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"
            reached = session.run(connect, timeout_s=20)
            assert reached.exit_code != 0 and "connected" not in reached.output
        finally:
            session.close()
    planner = BashSession(sandbox, repo, writable=False)
    try:
        assert planner.run("touch planted.txt", timeout_s=20).exit_code != 0
        assert not (repo / "planted.txt").exists()
    finally:
        planner.close()


def test_close_ends_the_shell(repo: Path, sandbox: Sandbox) -> None:
    session = BashSession(sandbox, repo, writable=True)
    child = _unique_sleep()
    session.run(f"{child} &", timeout_s=20)
    assert session.running
    session.close()
    assert not session.running
    assert not _running(child)


def _unique_sleep() -> str:
    """A `sleep` command line no other process on the machine has (another run of these
    tests may be going on at the same time): what `_running` looks for."""
    return f"sleep 60.{secrets.randbelow(10**9):09d}"


def _running(pattern: str) -> bool:
    """Whether a process whose command line contains `pattern` is still alive (bounded)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, check=False)
        if found.returncode != 0:
            return False
        time.sleep(0.1)
    return True


def test_running_sees_a_live_process() -> None:
    # `_running` must see a live process, or the checks above would prove nothing.
    command = _unique_sleep()
    child = subprocess.Popen(command.split())
    try:
        assert _running(command)
    finally:
        child.kill()
        child.wait()
    assert not _running(command)


@needs_bwrap
@pytest.mark.skipif(find_cgroup_host() is None, reason="the host gives no cgroups")
def test_the_session_runs_in_a_cgroup_of_its_own(repo: Path) -> None:
    sandbox = sandbox_for(SandboxConfig(kind="bwrap"))
    session = BashSession(sandbox, repo, writable=True)
    try:
        assert session.run("true", timeout_s=20).exit_code == 0
        assert session._live is not None
        memberships = Path(f"/proc/{session._live.proc.pid}/cgroup").read_text()
        groups = [line.split(":")[-1] for line in memberships.splitlines() if PREFIX in line]
        assert groups, memberships
    finally:
        session.close()
    host = find_cgroup_host()
    assert host is not None
    name = groups[0].rsplit("/", 1)[-1]
    assert not list(host.pids.glob(name)), "the session's cgroup is removed with it"


def _limited(kind: str) -> Sandbox:
    cfg = SandboxConfig(kind=kind, max_file_mb=20, max_memory_mb=256,  # type: ignore[arg-type]
                        max_worktree_mb=8)
    return sandbox_for(cfg)


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_session_command_that_hits_a_limit_is_told_which(kind: str, repo: Path) -> None:
    toolbox = Toolbox(Role.CODER, repo, _limited(kind), command_timeout_s=60)
    try:
        bash(toolbox, "cd src && X=kept")
        big = bash(toolbox, "head -c 2G /dev/zero > huge.bin")
        memory = bash(toolbox, "python3 -c 'b = bytearray(4 << 30); print(\"got\")'")
        after = bash(toolbox, "rm huge.bin; echo $X $(basename $PWD)")
    finally:
        toolbox.close()
    assert "[opus sandbox] command stopped: hit sandbox.max_file_mb (20 MB)" in big
    assert "[opus sandbox] command stopped: hit sandbox.max_memory_mb (256 MB)" in memory
    assert "got" not in memory
    assert "kept src" in after and "opus sandbox" not in after  # the session lives on


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_session_command_filling_the_worktree_is_stopped(kind: str, repo: Path) -> None:
    session = BashSession(_limited(kind), repo, writable=True)
    try:
        runaway = session.run(
            "i=0; while true; do head -c 1M /dev/urandom > f$i; i=$((i+1)); sleep 0.02; done",
            timeout_s=120,
        )
        assert not runaway.timed_out and runaway.exit_code != 0
        assert "hit sandbox.max_worktree_mb (8 MB)" in runaway.output
        still_over = session.run("true", timeout_s=30)
        assert still_over.exit_code == 1 and "max_worktree_mb" in still_over.output
        cleaned = session.run("sleep 2.5; rm -f f*; echo ok", timeout_s=30)
        assert cleaned.exit_code == 0 and cleaned.output.strip() == "ok"
    finally:
        session.close()
