"""`opus run`: build everything from the settings at the edge and hand it to the loop."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from opus.config import Settings, load_settings
from opus.daemon.forks import fork_server_pid, start_fork_server
from opus.daemon.logs import configure_logging
from opus.daemon.loop import Daemon, Role
from opus.daemon.prestart import jobs_waiting, prestart
from opus.daemon.runtime import Runtime, build_runtime
from opus.trace import mark

if TYPE_CHECKING:
    from opus.dashboard.server import DashboardServer


def run_daemon(
    config: Path | None,
    *,
    role: Role,
    once: bool,
    verbose: bool = False,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the daemon until SIGTERM (or until idle with `once`), then exit the process
    with its exit code (this never returns once the daemon has run).

    `environ` is the environment the process got, when `prestart` already took systemd's
    variables out of `os.environ` (and may have started the fork server)."""
    mark("daemon imported")
    if environ is None:
        environ = prestart(config, role=role, once=once)
    settings = load_settings(config)
    configure_logging("DEBUG" if verbose else "INFO", environ=environ)
    if role != "intake" and fork_server_pid() is None and (
        once or jobs_waiting(settings.database_url)
    ):
        # Settings only pydantic could read: started now, still beside the daemon's start.
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


def _dashboard(settings: Settings, environ: Mapping[str, str]) -> DashboardServer | None:
    """The web board on its own thread when `dashboard.listen` is set (designs/dashboard.md);
    uvicorn and Starlette are imported only then."""
    if not settings.dashboard.listen:
        return None
    from opus.dashboard.server import start_in_daemon

    return start_in_daemon(settings, environ)


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (half a second of module and object
    finalizers): the loop has settled, flushed and released everything that matters."""
    mark("exit")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
