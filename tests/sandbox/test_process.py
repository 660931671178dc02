"""Process control: exit codes, timeouts that kill the whole group, capped output."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.errors import SandboxError
from opus.sandbox import sandbox_for
from opus.sandbox.process import TIMEOUT_EXIT_CODE, CappedOutput
from opus.seams import Sandbox
from tests.sandbox.conftest import bwrap_sandbox, needs_bwrap


def _sandboxes() -> list[object]:
    return [
        pytest.param("none", id="none"),
        pytest.param("bwrap", id="bwrap", marks=[needs_bwrap, pytest.mark.bwrap]),
    ]


@pytest.fixture(params=_sandboxes())
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    if request.param == "bwrap":
        return bwrap_sandbox(cap=4000)
    return sandbox_for(SandboxConfig(kind="none", output_cap_bytes=4000))


def _processes_with(marker: str) -> list[str]:
    """Pids of live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(entry.name)
    return found


def test_capped_output_keeps_head_and_tail() -> None:
    out = CappedOutput(10)
    for chunk in (b"HEAD-", b"middle-middle-", b"-TAIL"):
        out.add(chunk)
    assert out.truncated
    assert out.total == 24
    text = out.text()
    assert text.startswith("HEAD-")
    assert text.endswith("-TAIL")
    assert "14 bytes of output omitted" in text


def test_capped_output_under_the_cap_is_whole() -> None:
    out = CappedOutput(100)
    out.add("héllo\n".encode())
    assert not out.truncated
    assert out.text() == "héllo\n"


def test_exit_code_and_interleaved_output(sandbox: Sandbox, worktree: Path) -> None:
    result = sandbox.run("echo out; echo err >&2; exit 3", worktree=worktree, timeout_s=20)
    assert result.exit_code == 3
    assert result.output == "out\nerr\n"
    assert not result.timed_out


def test_timeout_kills_the_group_including_grandchildren(sandbox: Sandbox, worktree: Path) -> None:
    marker = f"{os.getpid() % 1000 + 1000}.{time.monotonic_ns() % 100000}"
    started = time.monotonic()
    result = sandbox.run(
        f"sleep {marker} & sleep {marker}; echo never", worktree=worktree, timeout_s=1
    )
    assert time.monotonic() - started < 6
    assert result.timed_out
    assert result.exit_code == TIMEOUT_EXIT_CODE
    assert "never" not in result.output
    deadline = time.monotonic() + 3
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(f"sleep {marker}") == []


def test_background_leftovers_do_not_hold_the_result(sandbox: Sandbox, worktree: Path) -> None:
    started = time.monotonic()
    result = sandbox.run("sleep 30 & echo done", worktree=worktree, timeout_s=20)
    assert time.monotonic() - started < 5
    assert result.exit_code == 0
    assert not result.timed_out
    assert "done" in result.output


def test_output_cap_truncates(sandbox: Sandbox, worktree: Path) -> None:
    command = "echo FIRST-LINE; seq 1 100000; echo LAST-LINE"
    result = sandbox.run(command, worktree=worktree, timeout_s=20)
    assert result.exit_code == 0
    assert result.truncated
    assert result.output.startswith("FIRST-LINE\n")
    assert result.output.endswith("LAST-LINE\n")
    assert "bytes of output omitted" in result.output
    assert len(result.output.encode()) < 4000 + 100


def test_missing_worktree_is_a_sandbox_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not a directory"):
        sandbox.run("true", worktree=tmp_path / "gone", timeout_s=5)


@needs_bwrap
@pytest.mark.bwrap
def test_bwrap_timeout_kills_processes_that_left_the_group(worktree: Path) -> None:
    marker = f"{os.getpid() % 1000 + 2000}.{time.monotonic_ns() % 100000}"
    result = bwrap_sandbox().run(
        f"setsid sleep {marker} & sleep {marker}", worktree=worktree, timeout_s=1
    )
    assert result.timed_out
    deadline = time.monotonic() + 3
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(f"sleep {marker}") == []
