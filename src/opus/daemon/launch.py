"""`opus run`: build everything from the settings at the edge and hand it to the loop."""

from __future__ import annotations

import os
from pathlib import Path

from opus.config import load_settings
from opus.daemon.logs import configure_logging
from opus.daemon.loop import Daemon, Role
from opus.daemon.runtime import Runtime, build_runtime
from opus.daemon.sdnotify import SYSTEMD_VARIABLES


def run_daemon(config: Path | None, *, role: Role, once: bool, verbose: bool = False) -> int:
    """Run the daemon until SIGTERM (or until idle with `once`); returns the exit code."""
    settings = load_settings(config)
    environ = dict(os.environ)
    configure_logging("DEBUG" if verbose else "INFO", environ=environ)
    # Only this process talks to systemd: no child (git, sandbox, engine) may inherit it.
    for name in SYSTEMD_VARIABLES:
        os.environ.pop(name, None)
    runtime = build_runtime(settings)

    def reload() -> Runtime:
        return build_runtime(load_settings(config))

    return Daemon(runtime, role=role, once=once, environ=environ, reload=reload).run()
