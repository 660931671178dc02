"""Infrastructure failures go through the circuit breaker, not blind retries."""

from __future__ import annotations

from pathlib import Path

from opus.config import DaemonConfig, GitConfig, SandboxConfig, Settings, VaultConfig
from opus.daemon.loop import Daemon
from opus.daemon.runtime import build_runtime
from opus.domain import JobState
from opus.errors import EngineError
from opus.seams import AgentResult, AgentTask
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


class DownEngine:
    """The model service is down: every call fails as the real engine reports it."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, task: AgentTask) -> AgentResult:
        self.calls += 1
        raise EngineError("the Anthropic API answered 529 overloaded after 4 retries")


def test_engine_breaker_opens_notifies_and_stops_claiming(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    project = tmp_path / "proj"
    init_vault(project)
    (project / "vault" / "10_features" / "03_planned" / "FR-1.md").write_text(NOTE)
    settings = Settings(
        vault=VaultConfig(path=project / "vault"),
        daemon=DaemonConfig(
            state_dir=project / ".opus", poll_active_s=0.05, poll_idle_s=0.1,
            breaker_failures=2, breaker_cooldown_s=3600,
        ),
        git=GitConfig(default_repo=repo),
        sandbox=SandboxConfig(kind="none"),
        base_dir=project,
    )
    engine = DownEngine()
    runtime = build_runtime(settings, engine=engine)
    notifier = RecordingNotifier()
    runtime.ctx.notifier = notifier
    runtime.notifier = notifier  # type: ignore[assignment]

    # --once returns as soon as nothing can be claimed: here, behind the open breaker;
    # a job left blocked is a runtime failure (exit 1, SPEC §3).
    assert Daemon(runtime, once=True, environ={}).run() == 1

    assert engine.calls == 2, "two failures open the breaker; no third call is made"
    assert notifier.kinds().count("breaker") == 1
    job = runtime.ctx.store.latest_for_fr("FR-1")
    assert job is not None and job.state is JobState.QUEUED, "the job waits, it is not failed"
    events = [e.kind for e in runtime.ctx.store.events(job.id)]
    assert events.count("error") == 2
