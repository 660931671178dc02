"""`opus run`: build everything from the settings at the edge and hand it to the loop."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from opus.config import Settings, load_settings
from opus.daemon.logs import configure_logging
from opus.daemon.loop import Daemon, Role
from opus.daemon.runtime import Runtime, build_runtime
from opus.daemon.sdnotify import SYSTEMD_VARIABLES
from opus.daemon.workers import start_fork_server
from opus.domain import JobState
from opus.errors import OpusError

if TYPE_CHECKING:
    from opus.dashboard.server import DashboardServer


def run_daemon(config: Path | None, *, role: Role, once: bool, verbose: bool = False) -> int:
    """Run the daemon until SIGTERM (or until idle with `once`), then exit the process
    with its exit code (this never returns once the daemon has run)."""
    settings = load_settings(config)
    environ = dict(os.environ)
    configure_logging("DEBUG" if verbose else "INFO", environ=environ)
    # Only this process talks to systemd: no child (git, sandbox, engine) may inherit it.
    for name in SYSTEMD_VARIABLES:
        os.environ.pop(name, None)
    if role != "intake" and (once or _jobs_waiting(settings)):
        # Its imports (the engine's SDK) run beside the daemon's start, not after READY.
        start_fork_server(settings.agents.engine)
    runtime = build_runtime(settings)
    board = _dashboard(settings, environ)

    def reload() -> Runtime:
        return build_runtime(load_settings(config))

    try:
        code = Daemon(runtime, role=role, once=once, environ=environ, reload=reload).run()
    finally:
        if board is not None:
            board.stop()
    exit_now(code)


def _dashboard(settings: Settings, environ: dict[str, str]) -> DashboardServer | None:
    """The web board on its own thread when `dashboard.listen` is set (designs/dashboard.md);
    uvicorn and Starlette are imported only then."""
    if not settings.dashboard.listen:
        return None
    from opus.dashboard.server import start_in_daemon

    return start_in_daemon(settings, environ)


def _jobs_waiting(settings: Settings) -> bool:
    """Jobs queued or left running (a restart): the fork server is wanted at once.
    Otherwise it starts with the first job, and an idle daemon has none (designs/jobs.md)."""
    from opus.registry.reader import open_reader

    try:
        return bool(open_reader(settings.database_url).jobs([JobState.QUEUED, JobState.RUNNING]))
    except OpusError:
        return False  # the daemon's own start reports what is wrong with the database


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (half a second of module and object
    finalizers): the loop has settled, flushed and released everything that matters."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
