"""What an `opus` process imports, read from `python -X importtime` of real subprocesses.

`opus status` must not load the agent SDK, the forge clients, apprise or the secret
scanner; a daemon must reach READY without the `anthropic` SDK (it is loaded when the
first stage runs) and, with no `notify.urls`, without apprise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_repo
from tests.e2e_cli.helpers import clean_env, run_opus

HEAVY = {"anthropic", "apprise", "detect_secrets", "httpx"}
CONFIG = """\
[vault]
path = "vault"
[daemon]
state_dir = ".opus"
[agents]
engine = "anthropic"
[git]
default_repo = "repo"
"""
NOTE = """\
---
id: FR-3
title: Keep the last 30 days of exports
status: draft
---
# Summary

Old exports should be deleted after 30 days.
"""


def _project(root: Path) -> Path:
    make_repo(root / "repo", {"README.md": "# exports\n"})
    drafts = root / "vault" / "10_features" / "02_drafts"
    drafts.mkdir(parents=True)
    (drafts / "FR-3.md").write_text(NOTE)
    config = root / "opus.toml"
    config.write_text(CONFIG)
    return config


def _imported(importtime: str) -> list[str]:
    """Module names, in import order, from `-X importtime` lines on stderr."""
    names = []
    for line in importtime.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    return names


def _top_level(names: list[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_opus_status_imports_no_engine_forge_notifier_or_scanner(tmp_path: Path) -> None:
    config = _project(tmp_path)
    env = clean_env(tmp_path, {"PYTHONPROFILEIMPORTTIME": "1"})
    run_opus("--config", str(config), "status", cwd=tmp_path, env=clean_env(tmp_path))

    result = run_opus("--config", str(config), "status", cwd=tmp_path, env=env)

    assert result.code == 0, result.err
    modules = _imported(result.err)
    assert "opus.cli" in modules  # the timing lines really are there
    assert not HEAVY & _top_level(modules), sorted(HEAVY & _top_level(modules))
    # On SQLite it reads through the driver alone (opus.registry.reader).
    assert not {"sqlmodel", "sqlalchemy"} & _top_level(modules)


def test_the_daemon_is_ready_without_the_agent_sdk_or_apprise(tmp_path: Path) -> None:
    config = _project(tmp_path)
    stderr_path = tmp_path / "daemon.err"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "opus", "--config", str(config), "run"],
            cwd=tmp_path, env=clean_env(tmp_path), stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            # The daemon logs "opus serving as ..." right after READY, on the same stderr
            # as the import lines: whatever comes before it was imported before READY.
            while "opus serving as" not in stderr_path.read_text():
                assert proc.poll() is None, stderr_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the daemon never became ready"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    before_ready = stderr_path.read_text().split("opus serving as")[0]
    modules = _top_level(_imported(before_ready))

    assert "opus" in modules and "watchfiles" in modules
    assert "anthropic" not in modules
    assert "apprise" not in modules


def test_what_opus_run_does_before_the_fork_server_starts_is_light(tmp_path: Path) -> None:
    """`prestart` runs before the daemon's imports: none of pydantic, SQLAlchemy, the SDK
    or the daemon's own modules may come with it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import opus.daemon.prestart"],
        cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60,
        check=True,
    )
    modules = _imported(done.stderr)
    assert "opus.daemon.forks" in modules
    assert not {"pydantic", "pydantic_settings", "sqlalchemy", "anthropic"} & _top_level(modules)
    assert not {"opus.config", "opus.daemon.loop", "opus.daemon.workers"} & set(modules)


def test_after_the_fork_servers_preload_the_engines_client_imports_nothing(
    tmp_path: Path,
) -> None:
    """The preload builds a client once (placeholder key, no request), so a job process
    forked after it makes its own without importing anything; a bad environment must not
    break the preload."""
    script = (
        "import sys\n"
        "import opus.engines.anthropic_preload\n"
        "import anthropic\n"
        "before = set(sys.modules)\n"
        "anthropic.Anthropic(api_key='k', base_url='http://127.0.0.1:9', max_retries=0).close()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    env = {k: v for k, v in clean_env(tmp_path).items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_BASE_URL"] = "not a url"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
