"""The environment a sandboxed command sees: the parent's, minus anything secret.

This is the only module below the CLI that reads `os.environ`: a child needs PATH,
HOME, LANG and the toolchain variables of the user who runs opus, but never their
API keys, forge tokens, cloud credentials or the systemd notify socket.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

# Matched case-insensitively against the variable's name.
SECRET_PATTERNS: tuple[str, ...] = (
    "*KEY*",
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*CREDENTIAL*",
    "ANTHROPIC_*",
    "GITHUB_*",
    "GITEA_*",
    "AWS_*",
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "NOTIFY_SOCKET",
    "WATCHDOG_*",
    "OPUS_*",
)

SANDBOX_TMPDIR = "/tmp"


def is_secret_name(name: str) -> bool:
    """True when an environment variable called `name` must not reach a sandboxed command."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def scrubbed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A child's environment: `environ` without secrets, HOME kept, TMPDIR=/tmp."""
    env = {name: value for name, value in environ.items() if not is_secret_name(name)}
    env["TMPDIR"] = SANDBOX_TMPDIR
    return env


def parent_environ() -> dict[str, str]:
    """A snapshot of this process's environment (the sandbox's only read of it)."""
    return dict(os.environ)
