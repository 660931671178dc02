"""A job process: one per claimed job, forked from a server that holds the imports.

The daemon starts jobs through `multiprocessing`'s forkserver (designs/jobs.md): a
process started once that has imported this module and the engine, and forks a job
process per request in a few milliseconds instead of an interpreter start and a second
of imports. `serve(header, inbox, events)` is the job process's whole life:
`header` names the job and carries the settings; it reports on `events` (a one-way
pipe) `{"stage": …}`, `{"touch": 1}` (at most once a second), `{"answered": 1}` once, at
the model API's first answer, `{"group": pgid}` for every command it starts, and
`{"done": …}` at the end; it reads control messages from `inbox`:
`{"stop": reason}` stops the job at its next checkpoint.

Stopping now is a signal. On SIGTERM it stops every command of its stage (the process
groups it started and every descendant, even one that left its group: it is a
subreaper) with SIGTERM, SIGKILLs what is left after the grace, and exits at once:
nothing of the stage is committed or pushed, and an engine HTTP call in flight is
abandoned. When its parent (the fork server, which ends with the daemon) dies, the
kernel sends it SIGTERM and it kills its commands without a grace; a closed inbox means
the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

from opus.config import Settings, settings_variables
from opus.daemon.logs import configure_logging
from opus.daemon.workers import job_logger
from opus.pipeline.context import JobControl
from opus.sandbox.lifetime import become_subreaper, die_with_parent, kill_tree
from opus.sandbox.process import live_groups, observe_groups
from opus.trace import mark

log = logging.getLogger("opus.job")

EXIT_STOPPED = 143
"""Exit code after a stop signal (128 + SIGTERM), as shells report it."""
EXIT_ORPHAN = 3
TOUCH_EVERY_S = 1.0


class Events:
    """The one-way channel to the daemon (thread-safe)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, **event: Any) -> None:
        # A daemon that is gone cannot be told; the parent-death signal ends us.
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(event)


class ReportingControl(JobControl):
    """A `JobControl` that tells the daemon of stage changes and activity.

    At its first activity (the first model reply; the first request has gone out) it
    starts `on_first_activity` on a thread: work the job needs later, done while it
    mostly waits on the model and on commands."""

    events: Events | None = None
    on_first_activity: Callable[[], None] | None = None
    _last_touch_sent: float = 0.0

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        mark(f"stage {stage}")
        if self.events is not None:
            self.events.send(stage=stage)

    def answered(self) -> None:
        first = self.answered_at is None
        super().answered()
        if first and self.events is not None:
            self.events.send(answered=1)

    def touch(self, what: str) -> None:
        super().touch(what)
        later, self.on_first_activity = self.on_first_activity, None
        if later is not None:
            threading.Thread(target=later, name="job-ahead", daemon=True).start()
        now = time.monotonic()
        if self.events is not None and now - self._last_touch_sent >= TOUCH_EVERY_S:
            self._last_touch_sent = now
            self.events.send(touch=1)


class _Stopper:
    """The SIGTERM handler: stop the stage's commands, then exit without unwinding."""

    def __init__(self, parent_pid: int, grace_s: float) -> None:
        self.parent_pid = parent_pid
        self.grace_s = grace_s
        self.daemon_gone = threading.Event()

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        # The daemon died (its pipe closed, or the fork server went with it): no grace.
        orphaned = self.daemon_gone.is_set() or os.getppid() != self.parent_pid
        kill_tree(os.getpid(), live_groups(), grace_s=0.0 if orphaned else self.grace_s)
        logging.shutdown()
        os._exit(EXIT_STOPPED)


def _listen(inbox: Connection, control: JobControl, stopper: _Stopper) -> None:
    """Control messages from the daemon; end of input means the daemon is gone."""
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            break
        if isinstance(message, dict) and "stop" in message:
            control.request_stop(str(message["stop"]))
    stopper.daemon_gone.set()
    os.kill(os.getpid(), signal.SIGTERM)


def _settings(header: dict[str, Any]) -> Settings:
    config = header.get("config_path")
    return Settings.model_validate(
        {
            **header["settings"],
            "base_dir": header["base_dir"],
            "config_path": None if config is None else Path(config),
        }
    )


def serve(header: dict[str, Any], inbox: Connection, events_conn: Connection) -> None:
    """Run the job `header` names; never returns (the process exits)."""
    mark("job serve")
    os.setsid()  # its own session: the daemon kills it as a group
    parent = os.getppid()
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(EXIT_ORPHAN)
    become_subreaper()
    # The settings travel whole in the header; their variables would apply twice.
    for name in settings_variables(os.environ):
        del os.environ[name]
    events = Events(events_conn)
    settings = _settings(header)
    grace = max(0.0, settings.daemon.stop_grace_s - 0.5)
    stopper = _Stopper(parent, grace)
    signal.signal(signal.SIGTERM, stopper)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the daemon, which decides
    configure_logging("INFO", environ=os.environ)
    observe_groups(lambda pgid: events.send(group=pgid))
    job_id = int(header["job_id"])
    control = ReportingControl(job_id, log=job_logger(settings.state_dir, job_id))
    control.events = events
    control.on_first_activity = _ready_delivery
    threading.Thread(target=_listen, args=(inbox, control, stopper), daemon=True).start()
    done = _run(settings, job_id, control)
    mark("job done")
    events.send(done=done)
    logging.shutdown()
    # No interpreter teardown: nothing left to flush, and a slow exit delays the daemon.
    os._exit(0)


def _ready_delivery() -> None:
    """The secret scan delivery runs imports its scanner (~0.2 s) and builds its plugins
    at the first scan: both happen here, on a thread, long before the deliver stage."""
    from opus.delivery.secrets import scan_added

    with contextlib.suppress(Exception):  # the real scan reports whatever goes wrong
        scan_added({}, texts={"warm-up": "nothing to find\n"})


def _run(settings: Settings, job_id: int, control: JobControl) -> dict[str, Any]:
    # Imported here: these bring the engine (and its SDK) in, which only a job needs.
    from opus.daemon.runtime import build_runtime
    from opus.daemon.workers import finished_to_dict, run_guarded
    from opus.engines import engine_for

    # Built before the first stage begins, so its import never counts as agent idleness.
    engine = engine_for(settings.agents, settings.sandbox)
    connect_ahead = getattr(engine, "connect_ahead", None)  # an engine with a client to make
    if connect_ahead is not None:
        connect_ahead()
    notices = getattr(engine, "notices", None)  # an engine with something to say once
    if notices is not None:
        for line in notices():
            control.log(f"warning: {line}")
    runtime = build_runtime(settings, engine=engine, create_tables=False)  # the daemon made them
    job = runtime.ctx.store.get(job_id)
    mark("job runtime built")
    finished = run_guarded(job, runtime.ctx, control)
    runtime.notifier.flush()
    return finished_to_dict(finished)
