"""What a running job needs from the outside world, and how it is told to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opus.config import Settings
from opus.domain import Job
from opus.seams import Clock, Engine, Forge, Notifier, Sandbox
from opus.seams import JobStore as Store


@dataclass
class PipelineContext:
    """The parts a pipeline runs on; built once by the daemon, shared by workers."""

    settings: Settings
    store: Store
    engine: Engine
    sandbox: Sandbox
    notifier: Notifier
    clock: Clock
    forge_for: Callable[[Job], Forge]

    @property
    def vault_root(self) -> Path:
        return self.settings.vault_path


PREEMPTED = "preempted"


@dataclass
class JobControl:
    """The daemon's handle on one running job: stop requests and liveness.

    The worker thread reads `stop_reason` between stages and between agent turns; the
    supervisor reads `idle_s()` and `stage_elapsed_s()` to find stuck stages.
    """

    job_id: int
    log: Callable[[str], None] = lambda _line: None
    stop_reason: str | None = None
    last_activity: float = field(default_factory=time.monotonic)
    stage_started: float = field(default_factory=time.monotonic)
    stage: str | None = None
    answered_at: float | None = None
    """When the model's API first answered this job (None: not yet, this run)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request_stop(self, reason: str) -> None:
        """Ask the job to stop at its next checkpoint (the first reason wins)."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason

    def should_stop(self) -> bool:
        """Stop at the next checkpoint (checked between stages)."""
        return self.stop_reason is not None

    def must_stop_now(self) -> bool:
        """Stop inside a stage too (checked between agent turns).

        Preemption waits for the stage to complete, so a paused job loses no work;
        shutdown, a stuck stage, a cancel or a lost lease do not wait.
        """
        reason = self.stop_reason
        return reason is not None and not reason.startswith(PREEMPTED)

    def touch(self, what: str) -> None:
        """Record activity (an agent reply, a tool call) and log it."""
        self.last_activity = time.monotonic()
        self.log(what)

    def answered(self) -> None:
        """Record that the model's API answered a call of this job."""
        if self.answered_at is None:
            self.answered_at = time.monotonic()

    def begin_stage(self, stage: str) -> None:
        self.stage = stage
        self.stage_started = self.last_activity = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self.last_activity

    def stage_elapsed_s(self) -> float:
        return time.monotonic() - self.stage_started
