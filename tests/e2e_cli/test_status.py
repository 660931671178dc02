"""`opus status` as an operator meets it: a real daemon, `kill -9`, shell pipes.

Each test drives `python -m opus` as a subprocess in a fresh `opus init` project.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.daemon.logs import log_path
from opus.domain import JobState
from opus.registry import open_store
from opus.vault.problems import NoteProblem, write_problems
from tests.e2e_cli.helpers import FAST_POLL, clean_env, run_opus, wait_for
from tests.registry.factory import make_fr

ENGINE = {
    "OPUS_SANDBOX__KIND": "none",
    "OPUS_AGENTS__ENGINE": "command",
    "OPUS_AGENTS__COMMAND": '["true"]',
    "OPUS_DAEMON__HEARTBEAT_S": "1",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    return tmp_path / "p"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path, {**FAST_POLL, **ENGINE})


@contextlib.contextmanager
def daemon(project: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`opus run` in its own session; SIGKILLed with its group when the test ends."""
    log = (project / f"daemon-{len(list(project.glob('daemon-*')))}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "opus", "run"], cwd=project, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def _status(project: Path, env: dict[str, str]) -> dict[str, object]:
    result = run_opus("status", "--json", cwd=project, env=env)
    assert result.code == 0, result.err
    data: dict[str, object] = json.loads(result.out)
    return data


def test_kill_9_leaves_no_daemon_running_and_a_clean_stop_leaves_no_record(
    project: Path, env: dict[str, str]
) -> None:
    with daemon(project, env) as proc:
        wait_for(lambda: _status(project, env)["daemon_running"] is True, timeout_s=30)
        shown = run_opus("status", cwd=project, env=env).out.splitlines()[0]
        assert shown.startswith("daemon    ") and f"pid {proc.pid}, role all" in shown
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    after = run_opus("status", cwd=project, env=env)
    assert after.code == 0
    first, second = after.out.splitlines()[:2]
    assert first == "daemon    no daemon running: start one with `opus run`"
    assert f"pid {proc.pid}" in second and "did not stop cleanly" in second
    data = _status(project, env)
    assert data["daemon_running"] is False
    assert [(d["pid"], d["alive"]) for d in data["daemons"]] == [(proc.pid, False)]  # type: ignore[index,union-attr]

    # The next daemon on this host clears the dead one's record; SIGTERM removes its own.
    with daemon(project, env) as proc2:
        wait_for(lambda: _status(project, env)["daemon_running"] is True, timeout_s=30)
        pids = [d["pid"] for d in _status(project, env)["daemons"]]  # type: ignore[union-attr,index]
        assert pids == [proc2.pid]
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(timeout=30) == 0
    assert _status(project, env)["daemons"] == []


def _shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = f"set -o pipefail; {sys.executable} -m opus {command}"
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_status_logs_and_metrics_end_quietly_when_the_reader_leaves(
    project: Path, env: dict[str, str]
) -> None:
    # Enough output to overflow a pipe, so the write really meets a closed reader.
    state = project / ".opus"
    write_problems(state, [NoteProblem(f"10_features/03_planned/n{i}.md", "bad YAML " * 8)
                           for i in range(3000)])
    store = open_store(f"sqlite:///{state / 'opus.db'}")
    job = store.enqueue(make_fr("FR-1"), project)
    store.close()
    log = log_path(state, job.id)
    log.parent.mkdir(exist_ok=True)
    log.write_text("".join(f"line {i}\n" for i in range(50_000)))

    for command in ("status | head -1", "status --json | head -1", "logs FR-1 | head -1",
                    "metrics | true", "status | true"):
        result = _shell(command, project, env)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, command
        assert result.stderr == "", (command, result.stderr)
    assert _shell("status | head -1", project, env).stdout.startswith("daemon    no daemon")
    assert _shell("logs FR-1 | head -1", project, env).stdout == "line 0\n"


def test_status_fits_100_columns_and_wide_shows_full_paths(
    project: Path, env: dict[str, str]
) -> None:
    state = project / ".opus"
    reason = "the frontmatter is not valid YAML (line 3: mapping values are not allowed here)"
    write_problems(state, [NoteProblem("10_features/03_planned/" + "a-long-note-name-" * 4
                                       + ".md", reason)])
    store = open_store(f"sqlite:///{state / 'opus.db'}")
    job = store.enqueue(make_fr("FR-1"), project / "repo")
    store.update(job.id, error="tests failed: " + "assertion error " * 20)
    store.close()
    narrow = run_opus("status", cwd=project, env=env)
    assert narrow.code == 0
    assert max(len(line) for line in narrow.out.splitlines()) <= 100, narrow.out
    assert "notes opus cannot use (1):" in narrow.out
    wide = run_opus("status", "--wide", cwd=project, env=env)
    assert reason in wide.out and max(len(line) for line in wide.out.splitlines()) > 100


def test_status_lists_the_latest_ended_jobs_and_all_lists_every_one(
    project: Path, env: dict[str, str]
) -> None:
    store = open_store(f"sqlite:///{project / '.opus' / 'opus.db'}")
    for n in range(1, 26):
        job = store.enqueue(make_fr(f"FR-{n}"), project)
        store.transition(job.id, JobState.RUNNING)
        store.transition(job.id, JobState.FAILED, error="tests failed")
    store.enqueue(make_fr("FR-99"), project)
    store.close()

    table = run_opus("status", cwd=project, env=env)
    assert table.code == 0, table.err
    assert "FR-99" in table.out and "FR-25 " in table.out and "FR-5 " not in table.out
    assert table.out.rstrip().endswith(
        "... and 5 older ended jobs (done, failed, cancelled): `opus status --all` lists them")
    data = json.loads(run_opus("status", "--json", cwd=project, env=env).out)
    assert len(data["jobs"]) == 21 and data["older_ended_jobs"] == 5
    every = json.loads(run_opus("status", "--json", "--all", cwd=project, env=env).out)
    assert len(every["jobs"]) == 26 and every["older_ended_jobs"] == 0
