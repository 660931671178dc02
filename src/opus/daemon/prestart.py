"""What `opus run` does before it imports the daemon (designs/lean.md).

A job resumed after a restart waits for the fork server's imports (the engine's SDK,
about a second), not for the daemon's. So the fork server is started here, a few
milliseconds into the process, from the settings `opus.lightconfig` reads without
pydantic; the daemon's own imports and start then run beside it. Only stdlib and light
opus modules are imported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from opus.daemon.forks import start_fork_server
from opus.daemon.sdnotify import SYSTEMD_VARIABLES
from opus.domain import JobState
from opus.errors import OpusError
from opus.trace import mark


def prestart(config: Path | None, *, role: str, once: bool) -> dict[str, str]:
    """Take systemd's variables out of the environment every child inherits (only the
    daemon talks to systemd), and start the fork server now if jobs will want it.
    Returns the environment as the process got it (the daemon's notifier reads it)."""
    mark("prestart")
    environ = dict(os.environ)
    for name in SYSTEMD_VARIABLES:
        os.environ.pop(name, None)
    if role == "intake":
        return environ
    from opus.lightconfig import light_settings

    settings = light_settings(config)
    # None: a configuration only pydantic can judge; the daemon starts the server later.
    if settings is not None and (once or jobs_waiting(settings.database_url)):
        start_fork_server(settings.engine)
        mark("fork server started")
    return environ


def jobs_waiting(database_url: str) -> bool:
    """Jobs queued or left running (a restart): the fork server is wanted at once.
    Otherwise it starts with the first job, and an idle daemon has none (designs/jobs.md)."""
    from opus.registry.reader import open_reader

    try:
        return bool(open_reader(database_url).jobs([JobState.QUEUED, JobState.RUNNING]))
    except OpusError:
        return False  # the daemon's own start reports what is wrong with the database
