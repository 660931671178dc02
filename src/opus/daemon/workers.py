"""Workers: one per claimed job, each with its own worktree and sandbox processes.

A worker is a job process (`opus.daemon.jobproc`, forked by `multiprocessing`'s fork
server; the daemon's normal mode, see designs/jobs.md) or, when the runtime carries an
engine object built in this process (`opus demo`, tests with a scripted engine), a
thread. Workers share nothing mutable
but the registry. The pool reports finished jobs through a queue that the loop drains;
it never decides what a finished job means.

Two ways to stop a worker:
- `request_stop(reason)` (`JobControl.request_stop`): at the next checkpoint; used for
  preemption, so a paused job loses no work.
- `terminate(job_id, reason)`: now. A job process gets SIGTERM, stops every command of
  its stage and exits; it is SIGKILLed (with the command groups it reported) if it is
  still there after `daemon.stop_grace_s`. A thread can only be asked to stop.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from opus.daemon.forks import fork_context, stop_fork_server
from opus.daemon.logs import JobLog
from opus.domain import Job
from opus.errors import EngineAccessDenied, EngineError, OpusError, StoreConflict
from opus.forges.http import RateLimited
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import Outcome, run_job
from opus.sandbox.lifetime import signal_all

log = logging.getLogger(__name__)

# Job-log lines also worth a line on stderr (the journal): progress, not every tool call.
PROGRESS_PREFIXES = ("stage ", "delivered")
TROUBLE_PREFIXES = ("failed", "error", "internal error")
"""At WARNING, so `journalctl -p warning` shows every job that failed and why."""


def job_logger(state_dir: Path, job_id: int) -> Callable[[str], None]:
    """Writes a job's log file, and its progress and failures to the daemon's log."""
    write = JobLog.for_job(state_dir, job_id).write

    def emit(line: str) -> None:
        write(line)
        first = line.splitlines()[0] if line else ""
        if line.startswith(TROUBLE_PREFIXES):
            log.warning("job %d: %s", job_id, first)
        elif line.startswith(PROGRESS_PREFIXES):
            log.info("job %d: %s", job_id, first)

    return emit


@dataclass(frozen=True)
class Finished:
    job: Job
    outcome: Outcome
    error: OpusError | None = None
    """An infrastructure error (API, git, forge, sandbox) that ended the run."""


def run_guarded(job: Job, ctx: PipelineContext, control: JobControl) -> Finished:
    """`run_job`, with errors turned into what the settler needs (never raises)."""
    try:
        return Finished(job, run_job(job, ctx, control))
    except OpusError as exc:
        control.log(f"error: {exc}")
        return Finished(job, Outcome("stopped", "error"), exc)
    except Exception as exc:  # a bug must not kill the daemon; it fails this job only
        log.exception("job %s crashed", job.id)
        control.log(f"internal error: {exc!r}")
        return Finished(job, Outcome("stopped", "error"), OpusError(repr(exc)))


def finished_to_dict(item: Finished) -> dict[str, Any]:
    """What a job process sends back when `run_guarded` returns: plain data, with the
    kind of error the settler tells apart (a refused key, engine, rate limit, any other)
    and whether a retry may heal it (a config error fails the job at once)."""
    error = item.error
    kind = (
        "rate_limited" if isinstance(error, RateLimited)
        else "engine_access" if isinstance(error, EngineAccessDenied)
        else "engine" if isinstance(error, EngineError)
        else "conflict" if isinstance(error, StoreConflict)
        else "other"
    )
    return {
        "kind": item.outcome.kind,
        "detail": item.outcome.detail,
        "error": None if error is None else str(error),
        "error_kind": kind,
        "retryable": True if error is None else error.retryable,
        "wait_s": error.wait_s if isinstance(error, RateLimited) else 0.0,
    }


_ERROR_KINDS: dict[str, type[OpusError]] = {
    "engine_access": EngineAccessDenied, "engine": EngineError, "conflict": StoreConflict,
}


def finished_from_dict(job: Job, data: dict[str, Any]) -> Finished:
    error: OpusError | None = None
    if data.get("error") is not None:
        message, kind = str(data["error"]), data.get("error_kind")
        if kind == "rate_limited":
            error = RateLimited(message, float(data.get("wait_s", 0.0)))
        else:
            error = _ERROR_KINDS.get(str(kind), OpusError)(message)
        error.retryable = bool(data.get("retryable", True))
    return Finished(job, Outcome(data["kind"], str(data.get("detail", ""))), error)


class _Worker(Protocol):
    job: Job
    control: JobControl

    def alive(self) -> bool: ...
    def terminate(self, reason: str) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout_s: float) -> None: ...


@dataclass
class _ThreadWorker:
    job: Job
    control: JobControl
    thread: threading.Thread

    def alive(self) -> bool:
        return self.thread.is_alive()

    def terminate(self, reason: str) -> None:
        # A thread cannot be killed: it stops between agent turns or at its checkpoint.
        self.control.request_stop(reason)

    def kill(self) -> None:
        self.control.request_stop("killed")

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout=timeout_s)


@dataclass
class _ProcessWorker:
    """A job process, and the reader of its events (stage, activity, command groups).

    Only the reader thread touches the `multiprocessing` handle after the start (its
    exit-status pipe is not safe to read from two threads); the others see `ended`.
    """

    job: Job
    control: JobControl
    proc: BaseProcess
    inbox: Connection
    events: Connection
    grace_s: float
    groups: set[int] = field(default_factory=set)
    result: dict[str, Any] | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    _killer: threading.Timer | None = None

    def alive(self) -> bool:
        return not self.ended.is_set()

    def terminate(self, reason: str) -> None:
        self.control.request_stop(reason)
        if self._killer is not None or not self.alive() or self.proc.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        self._killer = threading.Timer(self.grace_s, self.kill)
        self._killer.daemon = True
        self._killer.start()

    def kill(self) -> None:
        """SIGKILL the job process's group and every command group it reported."""
        if self.proc.pid is not None and self.alive():
            signal_all((), [self.proc.pid, *self.groups], signal.SIGKILL)

    def join(self, timeout_s: float) -> None:
        self.ended.wait(timeout_s)

    def tell(self, message: dict[str, Any]) -> None:
        """Send a control message (a stop at the next checkpoint) to the job process."""
        with contextlib.suppress(OSError, ValueError):
            self.inbox.send(message)

    def read_events(self) -> None:
        """Follow the job process's events until it exits (runs in its own thread)."""
        while True:
            try:
                event = self.events.recv()
            except (EOFError, OSError):
                break
            if isinstance(event, dict):
                self._apply(event)
        self.proc.join()
        self.ended.set()
        if self._killer is not None:
            self._killer.cancel()
        # Leftovers of a killed job process: its commands' groups go with it.
        signal_all((), self.groups, signal.SIGKILL)
        for conn in (self.inbox, self.events):
            conn.close()

    def _apply(self, event: dict[str, Any]) -> None:
        if "group" in event:
            self.groups.add(int(event["group"]))
        elif "stage" in event:
            self.control.begin_stage(str(event["stage"]))
        elif "touch" in event:
            self.control.last_activity = time.monotonic()
        elif "answered" in event:
            self.control.answered()
        elif "done" in event:
            self.result = event["done"]

    def finished(self) -> Finished:
        if self.result is not None:
            return finished_from_dict(self.job, self.result)
        reason = self.control.stop_reason
        if reason is not None:
            return Finished(self.job, Outcome("stopped", reason))
        code = self.proc.exitcode
        error = OpusError(f"the job process ended with exit code {code}; see the daemon's log")
        return Finished(self.job, Outcome("stopped", "error"), error)


class WorkerPool:
    """Runs claimed jobs in job processes (or threads); `drain()` returns those that ended."""

    def __init__(
        self,
        ctx: PipelineContext,
        *,
        job_log: Callable[[int], Callable[[str], None]],
        on_finish: Callable[[], None] = lambda: None,
        processes: bool = True,
    ) -> None:
        self.ctx = ctx
        self.processes = processes
        self._job_log = job_log
        self._on_finish = on_finish
        self._slots: dict[int, _Worker] = {}
        self._finished: queue.Queue[Finished] = queue.Queue()

    def __repr__(self) -> str:
        kind = "processes" if self.processes else "threads"
        return f"WorkerPool(running={len(self._slots)}, {kind})"

    def __len__(self) -> int:
        return len(self._slots)

    def start(self, job: Job) -> None:
        control = JobControl(job.id, log=self._job_log(job.id))
        if self.processes:
            self._slots[job.id] = self._start_process(job, control)
            return
        thread = threading.Thread(
            target=self._run_thread, args=(job, control), name=f"job-{job.id}", daemon=True
        )
        self._slots[job.id] = _ThreadWorker(job, control, thread)
        thread.start()

    def controls(self) -> list[tuple[Job, JobControl]]:
        return [(slot.job, slot.control) for slot in self._slots.values()]

    def control(self, job_id: int) -> JobControl | None:
        slot = self._slots.get(job_id)
        return slot.control if slot else None

    def stop_at_checkpoint(self, job_id: int, reason: str) -> None:
        """Stop the job once its running stage completes (preemption)."""
        slot = self._slots.get(job_id)
        if slot is None:
            return
        slot.control.request_stop(reason)
        if isinstance(slot, _ProcessWorker):
            slot.tell({"stop": reason})

    def terminate(self, job_id: int, reason: str) -> None:
        """Stop the job now: its stage's commands get SIGTERM, then SIGKILL after the grace."""
        slot = self._slots.get(job_id)
        if slot is not None:
            slot.terminate(reason)

    def terminate_all(self, reason: str) -> None:
        for slot in list(self._slots.values()):
            slot.terminate(reason)

    def kill_all(self) -> None:
        """SIGKILL every job process and its commands (a second stop signal)."""
        for slot in list(self._slots.values()):
            slot.kill()

    def drain(self) -> list[Finished]:
        """The jobs whose workers ended since the last call."""
        done: list[Finished] = []
        while True:
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                return done
            slot = self._slots.pop(item.job.id, None)
            if slot is not None:
                slot.join(5)
            done.append(item)

    def wait(self, timeout_s: float) -> bool:
        """Wait for every worker to end; False if some are still running at the deadline."""
        deadline = time.monotonic() + timeout_s
        for slot in list(self._slots.values()):
            while slot.alive() and time.monotonic() < deadline:
                slot.join(0.1)
        return not any(slot.alive() for slot in self._slots.values())

    def close(self) -> None:
        """Stop the fork server (jobs still alive get its death signal); the next `start`
        starts it again."""
        if self.processes:
            stop_fork_server()

    # ------------------------------------------------------------------ threads

    def _run_thread(self, job: Job, control: JobControl) -> None:
        try:
            self._finished.put(run_guarded(job, self.ctx, control))
        finally:
            # A freed slot and a result to settle: the loop need not wait for its next poll.
            self._on_finish()

    # ------------------------------------------------------------------ processes

    def _start_process(self, job: Job, control: JobControl) -> _ProcessWorker:
        settings = self.ctx.settings
        header = {
            "job_id": job.id,
            "settings": settings.model_dump(mode="json"),
            "base_dir": str(settings.base_dir),
            "config_path": None if settings.config_path is None else str(settings.config_path),
        }
        inbox_r, inbox_w = multiprocessing.Pipe(duplex=False)
        events_r, events_w = multiprocessing.Pipe(duplex=False)
        from opus.daemon.jobproc import serve

        proc = fork_context(settings.agents.engine).Process(
            target=serve, args=(header, inbox_r, events_w), name=f"opus-job-{job.id}",
            daemon=False,
        )
        proc.start()
        # The child holds its ends now; ours must go, or its exit would not be an EOF.
        inbox_r.close()
        events_w.close()
        grace = max(0.0, settings.daemon.stop_grace_s)
        worker = _ProcessWorker(job, control, proc, inbox_w, events_r, grace)
        threading.Thread(
            target=self._follow, args=(worker,), name=f"job-{job.id}", daemon=True
        ).start()
        return worker

    def _follow(self, worker: _ProcessWorker) -> None:
        try:
            worker.read_events()
            self._finished.put(worker.finished())
        finally:
            self._on_finish()
