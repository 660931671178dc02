"""`sandbox.kind = "none"`: process control and a clean environment, no isolation.

For machines where bubblewrap cannot run (no user namespaces, containers without the
right privileges). Commands can read and write everything the opus user can, so this
logs a loud warning once per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

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
    """`Sandbox` without isolation: same timeouts, output cap and scrubbed environment.

    `writable=False` cannot be enforced here.
    """

    def __init__(
        self,
        *,
        output_cap_bytes: int,
        environ: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
    ) -> None:
        super().__init__(output_cap_bytes=output_cap_bytes, environ=environ, pass_env=pass_env)
        warn_unsafe_once()

    def __repr__(self) -> str:
        return "UnsandboxedRunner()"
