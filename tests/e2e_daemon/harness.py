"""A vault, a target repo, an `opus.toml` and `opus run` as a real subprocess.

Every wait is deadline-based (`wait_until`); every daemon started through `Daemons` is
killed when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from opus.domain import Job, JobState
from opus.registry import open_store
from opus.sandbox import bwrap_available
from opus.seams import JobStore
from tests.conftest import make_repo, run_git
from tests.standins.messages_api import API_KEY

T = TypeVar("T")

SANDBOX = "bwrap" if bwrap_available() else "none"
SETTLE_S = 0.2
"""`vault.settle_s` of these tests; the typing test sets the default (2 s) back."""

FR_NOTE = """\
---
id: {fr_id}
title: Write {fr_id}
status: planned
priority: {priority}
test_command: {test_command}
---
# Summary

Write the file for {fr_id}.
"""


def wait_until(check: Callable[[], T | None], what: str, timeout_s: float = 45.0) -> T:
    """Poll `check` until it returns something truthy, or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Workspace:
    """One opus installation: `opus.toml`, `vault/`, `repo/` (origin: `remote.git`)."""

    root: Path
    database_url: str | None = None
    settings: dict[str, dict[str, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.repo = make_repo(self.root / "repo", {"README.md": "# target\n"})
        remote = self.root / "remote.git"
        run_git(self.root, "init", "-q", "--bare", "-b", "main", str(remote))
        run_git(self.repo, "remote", "add", "origin", str(remote))
        run_git(self.repo, "push", "-q", "origin", "main")
        (self.root / "vault" / "10_features" / "03_planned").mkdir(parents=True)
        self.write_config()
        self._store: JobStore | None = None

    @property
    def config(self) -> Path:
        return self.root / "opus.toml"

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / '.opus' / 'opus.db'}"

    def write_config(self, **overrides: Mapping[str, object]) -> None:
        """Write `opus.toml` from the defaults of these tests, `settings` and `overrides`."""
        sections: dict[str, dict[str, object]] = {
            # Notes here are saved whole (temp file, rename): nothing to wait out.
            "vault": {"path": "vault", "settle_s": SETTLE_S},
            "daemon": {"state_dir": ".opus", "poll_active_s": 0.2, "poll_idle_s": 0.5},
            "database": {"url": self.url},
            "git": {"default_repo": "repo"},
            "sandbox": {"kind": SANDBOX, "command_timeout_s": 30},
            "pr": {"provider": "local"},
            "agents": {"max_retries": 0},
        }
        for name, values in [*self.settings.items(), *overrides.items()]:
            sections.setdefault(name, {}).update(values)
        self.config.write_text("".join(_toml_section(n, v) for n, v in sections.items()))

    def write_fr(
        self, fr_id: str, *, priority: str = "medium", test_command: str | None = None
    ) -> Path:
        """Save a planned FR note (atomically, as an editor would)."""
        command = test_command or f"grep -q {fr_id} {fr_id.lower()}.txt"
        note = self.root / "vault" / "10_features" / "03_planned" / f"{fr_id}.md"
        temp = note.with_suffix(".tmp")
        temp.write_text(FR_NOTE.format(fr_id=fr_id, priority=priority, test_command=command))
        temp.rename(note)
        return note

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = wait_until(self._open_store, "the registry to exist")
        return self._store

    def _open_store(self) -> JobStore | None:
        if self.database_url is None and not (self.root / ".opus" / "opus.db").exists():
            return None
        return open_store(self.url)

    def job(self, fr_id: str) -> Job | None:
        return self.store.latest_for_fr(fr_id)

    def wait_state(self, fr_id: str, *states: JobState, timeout_s: float = 45.0) -> Job:
        def reached() -> Job | None:
            job = self.job(fr_id)
            return job if job is not None and job.state in states else None

        names = "/".join(state.value for state in states)
        return wait_until(reached, f"{fr_id} to be {names}", timeout_s)

    def completed_stages(self, fr_id: str) -> list[str]:
        job = self.job(fr_id)
        assert job is not None, f"{fr_id} has no job"
        return [run.stage.value for run in self.store.stage_runs(job.id) if run.ok]

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run `opus --config opus.toml ARGS` as a subprocess (bounded); (exit code, output)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
        done = subprocess.run(
            [sys.executable, "-m", "opus", "--config", str(self.config), *args],
            cwd=self.root,
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def branch_files(self, fr_id: str) -> set[str]:
        """The files a job's branch (on the remote) adds or changes relative to main."""
        job = self.job(fr_id)
        assert job is not None and job.branch, f"{fr_id} has no branch"
        remote = self.root / "remote.git"
        names = run_git(remote, "diff", "--name-only", "main", job.branch)
        return set(names.split())


def processes_with(token: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `token`."""
    return processes_matching(lambda cmdline: token in cmdline)


def processes_matching(match: Callable[[str], bool]) -> list[int]:
    """Live (non-zombie) processes whose command line (spaces for NULs) `match`es."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if match(cmdline) and stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _toml_section(name: str, values: Mapping[str, object]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Daemon:
    """`python -m opus run` in its own session, its output in a file."""

    def __init__(self, ws: Workspace, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.log_path = ws.root / f"daemon-{time.monotonic_ns()}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opus", "--config", str(ws.config), "run", *args],
            cwd=ws.root,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Send `signum` and wait (bounded) for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the daemon's whole process group (its sandboxes too) if still there."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()


@dataclass
class Daemons:
    """Starts daemons for a test and kills every one of them at the end."""

    base_url: str
    started: list[Daemon] = field(default_factory=list)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
        env.update(ANTHROPIC_BASE_URL=self.base_url, ANTHROPIC_API_KEY=API_KEY)
        env.update(extra or {})
        return env

    def start(
        self, ws: Workspace, *args: str, env: Mapping[str, str] | None = None
    ) -> Daemon:
        daemon = Daemon(ws, args, self.env(env))
        self.started.append(daemon)
        return daemon

    def kill_all(self) -> None:
        for daemon in self.started:
            daemon.kill()


def outputs(daemons: Daemons) -> Iterator[str]:
    """Each daemon's output, for failure messages."""
    for daemon in daemons.started:
        yield f"--- {daemon.log_path.name} (exit {daemon.proc.poll()})\n{daemon.output[-4000:]}"
