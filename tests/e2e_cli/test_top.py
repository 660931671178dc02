"""`opus top` as a real process: under a pseudo-terminal it draws and `q` ends it with 0;
with stdout piped it prints the board once; and it loads no engine, forge or notifier."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.config import load_settings
from opus.conversation.questions import Question
from opus.conversation.waiting import Waiting, conversation_of, start_waiting
from opus.dashboard.server import build_context
from opus.domain import Job, JobState
from opus.registry import Registry, open_store
from opus.testing.clock import FakeClock
from tests.board.conftest import populate
from tests.dashboard.helpers import LOOPBACK, serving
from tests.e2e_cli.helpers import clean_env, run_opus
from tests.e2e_cli.test_lazy_imports import NEVER_FOR_OPERATOR_COMMANDS, _loaded
from tests.registry.factory import make_fr

DRAW_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An `opus init` project whose registry holds a job in every lane."""
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    project = tmp_path / "p"
    clock = FakeClock(FakeClock().now().replace(year=2030))  # beats stay fresh for the test
    store = open_store(f"sqlite:///{project / '.opus' / 'opus.db'}", clock=clock)
    populate(store, clock)
    store.close()
    return project


def _read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    """What the terminal shows up to `needle`; fails the test at the deadline."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never drawn; last output: {seen[-400:]!r}")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            try:
                seen += os.read(fd, 65536)
            except OSError as exc:  # EIO: the process closed the terminal
                raise AssertionError(f"exited before drawing {needle!r}: {seen[-400:]!r}") from exc
    return seen


def _wait_exit(pid: int, fd: int, timeout_s: float) -> int:
    """The exit code, draining the terminal meanwhile; SIGKILL and fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):
                os.read(fd, 65536)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"opus top did not exit within {timeout_s}s of `q`")


def _spawn_top(project: Path, env: dict[str, str], *args: str) -> tuple[int, int]:
    """`opus top ARGS` in a terminal of its own (as over SSH): its pid and the terminal's fd."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        try:
            os.chdir(project)
            os.execve(sys.executable, [sys.executable, "-m", "opus", "top", *args], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return pid, fd


def test_under_a_terminal_it_draws_the_lanes_and_q_exits_0(project: Path) -> None:
    pid, fd = _spawn_top(project, clean_env(project.parent, {"TERM": "xterm-256color"}))
    try:
        shown = _read_until(fd, b"Needs you (3)", DRAW_TIMEOUT_S)
        assert b"Running (1)" in shown and b"FR-R" in shown
        os.write(fd, b"q")
        assert _wait_exit(pid, fd, EXIT_TIMEOUT_S) == 0
    finally:
        os.close(fd)


ANSWERING_EDITOR = """#!/bin/sh
sed -i 's/^\\*\\*Answer:\\*\\* *$/**Answer:** memory, for now/' "$1"
"""


@dataclass(frozen=True)
class Asking:
    """An `opus init` project whose one job asks a question, and an editor that answers."""

    project: Path
    store: Registry
    job: Job
    env: dict[str, str]


@pytest.fixture
def asking(tmp_path: Path) -> Iterator[Asking]:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    project = tmp_path / "p"
    store = open_store(f"sqlite:///{project / '.opus' / 'opus.db'}")
    job = store.enqueue(make_fr("FR-W"), project)
    store.transition(job.id, JobState.RUNNING)
    question = Question("Which store?", ("redis", "memory"), "memory")
    start_waiting(store, store.get(job.id), Waiting(
        kind="questions", asked_by="planner", stage="plan", iteration=0, round=1,
        since=datetime.now(UTC).isoformat(), questions=(question,)))
    editor = tmp_path / "answer.sh"
    editor.write_text(ANSWERING_EDITOR)
    editor.chmod(0o755)
    env = clean_env(tmp_path, {"TERM": "xterm-256color", "EDITOR": str(editor)})
    try:
        yield Asking(project, store, store.get(job.id), env)
    finally:
        store.close()


def _answer_with_a(asking: Asking, *args: str) -> None:
    """`opus top ARGS` under a terminal: `a` on the only card answers it in the editor,
    the board comes back, `q` exits 0."""
    store, job = asking.store, asking.job
    pid, fd = _spawn_top(asking.project, asking.env, *args)
    try:
        _read_until(fd, b"questions", DRAW_TIMEOUT_S)  # FR-W, the only card, is selected
        os.write(fd, b"a")
        deadline = time.monotonic() + DRAW_TIMEOUT_S
        while store.get(job.id).state is not JobState.QUEUED:
            assert time.monotonic() < deadline, "the answer never reached the registry"
            with contextlib.suppress(OSError):
                if select.select([fd], [], [], 0.2)[0]:
                    os.read(fd, 65536)
        (answered,) = conversation_of(store.get(job.id))
        assert answered.answers == ("memory, for now",)
        _read_until(fd, b"resumes where it asked", DRAW_TIMEOUT_S)  # back on the board
        os.write(fd, b"q")
        assert _wait_exit(pid, fd, EXIT_TIMEOUT_S) == 0
    finally:
        os.close(fd)


def test_a_hands_the_terminal_to_the_editor_and_its_answer_resumes_the_job(
    asking: Asking,
) -> None:
    _answer_with_a(asking)


def test_a_on_a_remote_board_answers_through_the_dashboards_api(asking: Asking) -> None:
    settings = load_settings(asking.project / "opus.toml")
    token = "a-token-for-the-remote-answer"
    with serving(build_context(settings, {"OPUS_DASHBOARD_TOKEN": token}, listen=LOOPBACK)) \
            as served:
        _answer_with_a(replace(asking, env={**asking.env, "OPUS_DASHBOARD_TOKEN": token}),
                       "--url", served.url)


def test_with_stdout_piped_it_prints_the_board_once(project: Path) -> None:
    result = run_opus("top", cwd=project)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("opus board at ")
    titles = [line for line in lines if line and not line.startswith(" ")][2:]
    assert titles == ["Queued / Waiting (3)", "Running (1)", "Needs you (3)", "In review (1)",
                      "Ready to merge (1)", "Done (1)", "Failed (2)"]
    running = lines[lines.index("Running (1)") + 1].split()
    assert running[1:6] == ["FR-R", "code", "2", "0m00s", "$0.75"]
    assert "escalation: CI still failing on PR 3" in result.out
    assert "questions: Q-FR-W.md (" in result.out and "plan approval (" in result.out
    assert "waiting on FR-8" in result.out
    assert run_opus("top", "--once", cwd=project).out.splitlines()[2:] == lines[2:]


def test_top_and_its_terminal_app_load_no_engine_forge_or_notifier(project: Path) -> None:
    probe = ("import json, sys\nimport opus.board.top, opus.board.remote, opus.actions, opus.cli\n"
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=project, env=clean_env(project),
                         capture_output=True, text=True, timeout=60, check=True).stdout
    modules = set(json.loads(out))
    assert "textual.app" in modules
    assert not _loaded(modules, NEVER_FOR_OPERATOR_COMMANDS)
    assert not _loaded(modules, ("starlette", "uvicorn", "opus.dashboard", "sqlalchemy"))
