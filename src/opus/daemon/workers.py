"""Worker threads: one per claimed job, each with its own worktree and sandbox processes.

Workers share nothing mutable but the registry. The pool reports finished jobs through
a queue that the loop drains; it never decides what a finished job means.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from opus.domain import Job
from opus.errors import OpusError
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import Outcome, run_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    job: Job
    outcome: Outcome
    error: OpusError | None = None
    """An infrastructure error (API, git, forge, sandbox) that ended the run."""


@dataclass
class _Slot:
    job: Job
    control: JobControl
    thread: threading.Thread


class WorkerPool:
    """Runs claimed jobs in threads; `drain()` returns those that ended."""

    def __init__(
        self,
        ctx: PipelineContext,
        *,
        job_log: Callable[[int], Callable[[str], None]],
        on_finish: Callable[[], None] = lambda: None,
    ) -> None:
        self.ctx = ctx
        self._job_log = job_log
        self._on_finish = on_finish
        self._slots: dict[int, _Slot] = {}
        self._finished: queue.Queue[Finished] = queue.Queue()

    def __repr__(self) -> str:
        return f"WorkerPool(running={len(self._slots)})"

    def __len__(self) -> int:
        return len(self._slots)

    def start(self, job: Job) -> None:
        control = JobControl(job.id, log=self._job_log(job.id))
        thread = threading.Thread(
            target=self._run, args=(job, control), name=f"job-{job.id}", daemon=True
        )
        self._slots[job.id] = _Slot(job, control, thread)
        thread.start()

    def controls(self) -> list[tuple[Job, JobControl]]:
        return [(slot.job, slot.control) for slot in self._slots.values()]

    def control(self, job_id: int) -> JobControl | None:
        slot = self._slots.get(job_id)
        return slot.control if slot else None

    def drain(self) -> list[Finished]:
        """The jobs whose threads ended since the last call."""
        done: list[Finished] = []
        while True:
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                return done
            slot = self._slots.pop(item.job.id, None)
            if slot is not None:
                slot.thread.join(timeout=5)
            done.append(item)

    def stop_all(self, reason: str) -> None:
        for slot in self._slots.values():
            slot.control.request_stop(reason)

    def wait(self, timeout_s: float) -> bool:
        """Wait for every thread to end; False if some are still running at the deadline."""
        deadline = threading.Event()
        timer = threading.Timer(timeout_s, deadline.set)
        timer.start()
        try:
            for slot in list(self._slots.values()):
                while slot.thread.is_alive() and not deadline.is_set():
                    slot.thread.join(timeout=0.2)
        finally:
            timer.cancel()
        return not any(slot.thread.is_alive() for slot in self._slots.values())

    def _run(self, job: Job, control: JobControl) -> None:
        try:
            outcome = run_job(job, self.ctx, control)
            self._finished.put(Finished(job, outcome))
        except OpusError as exc:
            control.log(f"error: {exc}")
            self._finished.put(Finished(job, Outcome("stopped", "error"), exc))
        except Exception as exc:  # a bug must not kill the daemon; it fails this job only
            log.exception("job %s crashed", job.id)
            control.log(f"internal error: {exc!r}")
            self._finished.put(Finished(job, Outcome("stopped", "error"), OpusError(repr(exc))))
        finally:
            # A freed slot and a result to settle: the loop need not wait for its next poll.
            self._on_finish()
