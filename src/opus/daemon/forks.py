"""The fork server job processes come from (designs/jobs.md), started and stopped.

`multiprocessing`'s forkserver: a process started once, that imports everything a job
needs (`JOB_MODULES` and the engine's preload module, the SDK included) and then forks a
job process per request in a few milliseconds. Its imports are most of what a resumed
job waits for after a restart, so `opus run` starts it before its own imports
(`opus.daemon.prestart`); this module therefore imports nothing of opus's but the
engine names.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from multiprocessing.context import ForkServerContext
from typing import Any

from opus.engine_names import preload_module

JOB_MODULE = "opus.daemon.jobproc"
JOB_MODULES = (
    JOB_MODULE,
    "opus.daemon.runtime",
    "opus.daemon.workers",
    # What `run_job` imports on its way to the first model call.
    "opus.pipeline.preflight",
    "opus.pipeline.readiness",
    "opus.pipeline.asking_context",
    "opus.pipeline.sandbox_hints",
)
"""Imported by the fork server, so a job process starts with them loaded."""

PRELOAD_BEGIN = "opus.daemon.preload_begin"
PRELOAD_END = "opus.daemon.preload_end"
"""The first and last modules of the preload: the collector is paused between them."""

_server_lock = threading.Lock()


def start_fork_server(engine: str) -> None:
    """Start the fork server and return at once: its imports (the engine's SDK, about a
    second) run in its own process while the daemon starts, recovers and reads the vault.

    The environment the server inherits must already be the one jobs may see (no
    systemd variables): jobs are its forks.
    """
    fork_context(engine)


def fork_context(engine: str) -> ForkServerContext:
    """The `multiprocessing` context whose fork server has the job modules imported
    (started if it is not running; one process for the daemon's life, or until
    `stop_fork_server`)."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    with _server_lock:
        engine_module = preload_module(engine)
        # The SDK first: it is the longest import, and everything after reuses its parts.
        preload = [
            PRELOAD_BEGIN,
            *([engine_module] if engine_module else []),
            *JOB_MODULES,
            PRELOAD_END,
        ]
        context.set_forkserver_preload(preload)
        forkserver.ensure_running()
    return context


def fork_server_pid() -> int | None:
    """The running fork server's pid, if any."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver  # the module's single instance
    pid: int | None = getattr(server, "_forkserver_pid", None)
    return pid


def stop_fork_server() -> None:
    """SIGKILL the fork server (when every job has ended), and the resource tracker
    `multiprocessing` started with it: neither holds state opus needs (jobs share no
    semaphores or shared memory), and their own interpreter teardown would keep the
    daemon's stderr open after the daemon exits, which a caller of `run --once` waits on."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver
    with _server_lock:
        pid = getattr(server, "_forkserver_pid", None)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            server._stop()  # closes its pipe, reaps it, removes its socket
        _stop_resource_tracker()


def _stop_resource_tracker() -> None:
    from multiprocessing import resource_tracker

    tracker: Any = resource_tracker._resource_tracker  # the module's single instance
    with tracker._lock:
        pid, fd = tracker._pid, tracker._fd
        if pid is None or fd is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        tracker._pid = tracker._fd = None  # the next fork server starts a new one
