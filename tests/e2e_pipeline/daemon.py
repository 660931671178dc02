"""`opus run --once` as a real subprocess: its opus.toml, its environment, bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from opus.registry import Registry, open_store
from tests.e2e_pipeline.harness import SANDBOX, Project
from tests.standins.messages_api import API_KEY, MessagesAPI

TOML = f"""\
[vault]
path = "vault"

[daemon]
state_dir = ".opus"

[agents]
engine = "anthropic"
max_retries = 0

[sandbox]
kind = "{SANDBOX}"
command_timeout_s = 30

[git]
default_repo = "repo"

[pr]
provider = "local"
"""


def write_config(project: Project) -> Path:
    config = project.root / "opus.toml"
    config.write_text(TOML, encoding="utf-8")
    return config


def start_once(project: Project, api: MessagesAPI, log_name: str) -> subprocess.Popen[bytes]:
    """Start `opus --config opus.toml run --once`, its output going to a log file."""
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": api.base_url,
        "OPUS_DAEMON__POLL_ACTIVE_S": "0.2",
        "OPUS_DAEMON__POLL_IDLE_S": "0.5",
    }
    log = (project.root / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "opus", "--config", str(project.root / "opus.toml"), "run",
         "--once"],
        cwd=project.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def run_once(
    project: Project, api: MessagesAPI, log_name: str = "run.log", *, expect: int = 0
) -> str:
    """Run `opus run --once` to completion (bounded); returns its log, asserting the exit
    code (`expect`: 1 when a job is meant to fail)."""
    proc = start_once(project, api, log_name)
    try:
        proc.wait(timeout=60)
    finally:
        stop(proc)
    log = (project.root / log_name).read_text()
    assert proc.returncode == expect, log
    return log


def wait_until(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], *, timeout_s: float
) -> None:
    """Poll `condition` until true; fail if the deadline passes or the daemon exits first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the daemon exited early with {proc.returncode}"
        assert time.monotonic() < deadline, f"condition not met in {timeout_s}s"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the daemon (if still running) and reap it, bounded."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def registry(project: Project) -> Registry:
    return open_store(f"sqlite:///{project.state_dir / 'opus.db'}")
