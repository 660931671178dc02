"""`sandbox.kind = "none"`: process control, a clean environment and limits; no isolation.

For machines where bubblewrap cannot run (no user namespaces, containers without the
right privileges). Commands can read and write everything the opus user can, so this
logs a loud warning once per process.
"""

from __future__ import annotations

import logging
import threading

from opus.sandbox.process import ShellRunner

log = logging.getLogger(__name__)

UNSAFE_WARNING = (
    'sandbox.kind = "none": agent commands run WITHOUT isolation and can read and write '
    "anything this user can (only secret environment variables are removed); "
    'install bubblewrap (apt-get install bubblewrap) and set sandbox.kind = "bwrap"'
)

_warned = threading.Event()


def warn_unsafe_once() -> None:
    """Log the no-isolation warning, the first time only."""
    if not _warned.is_set():
        _warned.set()
        log.warning(UNSAFE_WARNING)


class UnsandboxedRunner(ShellRunner):
    """`Sandbox` without isolation: same timeouts, output cap, scrubbed environment and
    resource limits (rlimits, a cgroup where the host gives one, the worktree's size).
    The process limit counts as `sandbox/nproc.py` picks (a user namespace of the
    command's own where unshare can make one).

    `writable=False` cannot be enforced here. `sandbox_for` logs the warning above.
    """

    def __repr__(self) -> str:
        return "UnsandboxedRunner()"
