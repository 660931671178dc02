"""Choosing the sandbox from config, the doctor check, and the unsafe kind's warning."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.errors import SandboxError
from opus.sandbox import (
    BwrapSandbox,
    UnsandboxedRunner,
    bwrap_available,
    check_sandbox,
    limits_in_force,
    sandbox_for,
    unsafe,
)
from tests.sandbox.conftest import needs_bwrap


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget that this process already warned, so the first warning can be observed."""
    monkeypatch.setattr(unsafe, "_warned", threading.Event())


@pytest.fixture
def no_bwrap_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@needs_bwrap
def test_bwrap_kind_gives_a_bwrap_sandbox() -> None:
    assert bwrap_available()
    assert isinstance(sandbox_for(SandboxConfig()), BwrapSandbox)


def test_missing_bwrap_says_how_to_install_it(no_bwrap_on_path: None) -> None:
    assert not bwrap_available()
    with pytest.raises(SandboxError) as info:
        sandbox_for(SandboxConfig(kind="bwrap"))
    assert "apt-get install bubblewrap" in str(info.value)
    assert 'sandbox.kind = "none"' in str(info.value)


def test_none_kind_warns_loudly_once(
    fresh_warning: None, caplog: pytest.LogCaptureFixture, worktree: Path
) -> None:
    caplog.set_level(logging.WARNING, logger="opus.sandbox")
    first = sandbox_for(SandboxConfig(kind="none"))
    second = sandbox_for(SandboxConfig(kind="none"))
    assert isinstance(first, UnsandboxedRunner)
    assert isinstance(second, UnsandboxedRunner)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "WITHOUT isolation" in warnings[0].getMessage()


def test_none_kind_still_scrubs_the_environment(
    worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-secret")
    result = sandbox_for(SandboxConfig(kind="none")).run("env", worktree=worktree, timeout_s=10)
    assert "sk-ant-parent-secret" not in result.output
    assert "TMPDIR=/tmp" in result.output


def test_explicit_environ_is_used(worktree: Path) -> None:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(worktree), "GREETING": "hi", "X_TOKEN": "t"}
    sandbox = sandbox_for(SandboxConfig(kind="none", pass_env=["GREETING"]), environ=environ)
    result = sandbox.run("echo $GREETING-$X_TOKEN-$HOME", worktree=worktree, timeout_s=10)
    assert result.output.strip() == f"hi--{worktree}"


@needs_bwrap
def test_doctor_check_runs_bwrap() -> None:
    line = check_sandbox(SandboxConfig(network=True))
    assert line.startswith("bwrap ")
    assert "network on" in line
    assert "\n" not in line


def test_doctor_check_of_none_is_a_warning(fresh_warning: None) -> None:
    assert check_sandbox(SandboxConfig(kind="none")).startswith("WARNING")


def test_doctor_check_without_bwrap_raises(no_bwrap_on_path: None) -> None:
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        check_sandbox(SandboxConfig(kind="bwrap"))


def test_limits_in_force_names_the_mechanisms() -> None:
    complete, line = limits_in_force(SandboxConfig(max_processes=99, max_memory_mb=300))
    assert line.startswith(
        "bwrap: 99 processes, 300 MB memory, 1024 MB files, 1800 s CPU, 20480 MB worktree "
        "per command"
    )
    assert "rlimits" in line and "worktree size check" in line  # prlimit is installed here
    if not complete:
        assert "NOT enforced" in line


def test_the_none_kind_has_the_same_limits_and_says_how_processes_count() -> None:
    complete, line = limits_in_force(SandboxConfig(kind="none", max_processes=99))
    assert line.startswith("none: 99 processes")
    assert "rlimits" in line and "; processes: " in line  # how: tests/sandbox/test_nproc.py
    assert complete == limits_in_force(SandboxConfig(kind="bwrap"))[0]
