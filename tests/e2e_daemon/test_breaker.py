"""Infrastructure failures go through the circuit breaker, not blind retries."""

from __future__ import annotations

from pathlib import Path

from opus.daemon.loop import Daemon
from opus.domain import JobState
from opus.errors import EngineError
from opus.seams import AgentResult, AgentTask
from tests.e2e_daemon.one_note import one_note_runtime


class DownEngine:
    """The model service is down: every call fails as the real engine reports it."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, task: AgentTask) -> AgentResult:
        self.calls += 1
        raise EngineError("the Anthropic API answered 529 overloaded after 4 retries")


def test_engine_breaker_opens_notifies_and_stops_claiming(tmp_path: Path) -> None:
    engine = DownEngine()
    runtime, notifier = one_note_runtime(tmp_path, engine, breaker_failures=2)

    # --once returns as soon as nothing can be claimed: here, behind the open breaker;
    # a job left blocked is a runtime failure (exit 1, SPEC §3).
    assert Daemon(runtime, once=True, environ={}).run() == 1

    assert engine.calls == 2, "two failures open the breaker; no third call is made"
    assert notifier.kinds().count("breaker") == 1
    job = runtime.ctx.store.latest_for_fr("FR-1")
    assert job is not None and job.state is JobState.QUEUED, "the job waits, it is not failed"
    events = [e.kind for e in runtime.ctx.store.events(job.id)]
    assert events.count("error") == 2
