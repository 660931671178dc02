"""The environment a sandboxed command sees: an allowlist of the parent's variables.

This is the only module below the CLI that reads `os.environ`. A child needs PATH,
HOME, the locale and the toolchain variables of the user who runs opus (pyenv, uv,
nvm, rustup, Go, Java...), and nothing else: not their API keys, forge tokens, cloud
credentials, agent sockets, the systemd notify socket, nor any variable nobody listed.
A name must match `ALLOWED` (or `sandbox.pass_env`) *and* not look like a secret.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

# Matched case-sensitively (variable names are): exact names or fnmatch patterns.
ALLOWED: tuple[str, ...] = (
    # The basics every shell and tool expects.
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "NO_COLOR", "TZ",
    "LANG", "LANGUAGE", "LC_*",
    "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
    # Python: interpreters and environments under $HOME (pyenv, uv, conda, poetry, pipx).
    "PYENV", "PYENV_*", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "CONDA_*", "UV_*", "PIP_*",
    "POETRY_*", "PIPX_*", "PYTHONPATH", "PYTHONHOME", "PYTHONIOENCODING",
    "PYTHONDONTWRITEBYTECODE", "PYTHONUTF8",
    # JavaScript, Ruby, Rust, Go, JVM, and the version managers that shim them.
    "NVM_*", "NODE_PATH", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "NPM_CONFIG_PREFIX",
    "PNPM_HOME", "VOLTA_HOME", "BUN_INSTALL", "DENO_DIR", "DENO_INSTALL",
    "RBENV_*", "GEM_HOME", "GEM_PATH", "BUNDLE_PATH", "NODENV_*", "GOENV_*",
    "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN",
    "GOPATH", "GOROOT", "GOBIN", "GOFLAGS", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOTOOLCHAIN",
    "JAVA_HOME", "SDKMAN_*", "GRADLE_USER_HOME", "MAVEN_HOME", "M2_HOME",
    "ASDF_*", "MISE_*",
    # Native builds.
    "CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "PKG_CONFIG_PATH",
    "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",
    # Certificates and proxies (used only when sandbox.network is on).
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip

# Matched case-insensitively against the variable's name; wins over the allowlist.
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


def _any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex matching a name that any of the fnmatch `patterns` matches: compiled
    once at import (a job process inherits it from the fork server), where a hundred
    patterns compiled one by one cost a new process tens of milliseconds."""
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


_ALLOWED = _any_of(ALLOWED)
_SECRET = _any_of(SECRET_PATTERNS)


def is_secret_name(name: str) -> bool:
    """True when an environment variable called `name` must not reach a sandboxed command."""
    return _SECRET.match(name.upper()) is not None


def is_allowed_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when `name` is on the allowlist (or matches one of `extra`) and is no secret."""
    listed = _ALLOWED.match(name) is not None or any(
        fnmatch.fnmatchcase(name, pattern) for pattern in extra
    )
    return listed and not is_secret_name(name)


def scrubbed_env(environ: Mapping[str, str], pass_env: Iterable[str] = ()) -> dict[str, str]:
    """A child's environment: the allowed part of `environ`, TMPDIR=/tmp.

    `pass_env` (from `sandbox.pass_env`) adds names or patterns to the allowlist; a
    name that looks like a secret is dropped even then.
    """
    extra = tuple(pass_env)
    env = {name: value for name, value in environ.items() if is_allowed_name(name, extra)}
    env["TMPDIR"] = SANDBOX_TMPDIR
    return env


def parent_environ() -> dict[str, str]:
    """A snapshot of this process's environment (the sandbox's only read of it)."""
    return dict(os.environ)
