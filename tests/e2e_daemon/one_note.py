"""A daemon runtime over one planned note, a fresh repo and a recording notifier."""

from __future__ import annotations

from pathlib import Path

from opus.config import (
    DaemonConfig,
    DatabaseConfig,
    GitConfig,
    SandboxConfig,
    Settings,
    VaultConfig,
)
from opus.daemon.runtime import Runtime, build_runtime
from opus.seams import Engine
from opus.testing.notifier import RecordingNotifier
from opus.vault import init_vault
from tests.conftest import make_repo

NOTE = """\
---
id: FR-1
title: Anything
status: planned
test_command: "true"
---
Body.
"""


def one_note_runtime(
    tmp_path: Path,
    engine: Engine,
    *,
    breaker_failures: int,
    database_url: str | None = None,
) -> tuple[Runtime, RecordingNotifier]:
    """`FR-1` planned in a new project; breakers that stay open for an hour once open."""
    repo = make_repo(tmp_path / "repo")
    project = tmp_path / "proj"
    init_vault(project)
    (project / "vault" / "10_features" / "03_planned" / "FR-1.md").write_text(NOTE)
    settings = Settings(
        vault=VaultConfig(path=project / "vault"),
        daemon=DaemonConfig(
            state_dir=project / ".opus", poll_active_s=0.05, poll_idle_s=0.1,
            breaker_failures=breaker_failures, breaker_cooldown_s=3600,
        ),
        git=GitConfig(default_repo=repo),
        sandbox=SandboxConfig(kind="none"),
        database=DatabaseConfig(url=database_url),
        base_dir=project,
    )
    runtime = build_runtime(settings, engine=engine)
    notifier = RecordingNotifier()
    runtime.ctx.notifier = notifier
    runtime.notifier = notifier  # type: ignore[assignment]
    return runtime, notifier
