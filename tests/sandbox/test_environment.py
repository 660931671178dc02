"""The child's environment: an allowlist of the parent's variables, secrets never."""

from __future__ import annotations

import pytest

from opus.sandbox.environment import is_allowed_name, is_secret_name, scrubbed_env

# A developer's shell under systemd --user, shaped like the real thing.
PARENT = {
    "PATH": "/home/alice/.pyenv/shims:/home/alice/.local/bin:/usr/bin:/bin",
    "HOME": "/home/alice",
    "USER": "alice",
    "LANG": "en_GB.UTF-8",
    "LC_TIME": "de_DE.UTF-8",
    "TERM": "xterm-256color",
    "TZ": "Europe/Berlin",
    "PYENV_ROOT": "/home/alice/.pyenv",
    "PYENV_VERSION": "3.12.4",
    "VIRTUAL_ENV": "/home/alice/src/app/.venv",
    "UV_CACHE_DIR": "/home/alice/.cache/uv",
    "CARGO_HOME": "/home/alice/.cargo",
    "NVM_DIR": "/home/alice/.nvm",
    "TMPDIR": "/var/tmp/alice",
    "XDG_RUNTIME_DIR": "/run/user/1000",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus",
    "DISPLAY": ":0",
    "DATABASE_URL": "postgresql://app:pw@db/app",
    "SENTRY_DSN": "https://abc@o1.ingest.sentry.io/1",
    "INVOCATION_ID": "4f0c0e",
    "ANTHROPIC_API_KEY": "sk-ant-1",
    "GITHUB_TOKEN": "ghp_1",
    "SSH_AUTH_SOCK": "/run/user/1000/ssh",
    "NOTIFY_SOCKET": "/run/systemd/notify",
    "OPUS_DATABASE__URL": "postgresql://x",
    "UV_INDEX_TOKEN": "t",
    "PIP_PASSWORD": "p",
}
KEPT = {
    "PATH", "HOME", "USER", "LANG", "LC_TIME", "TERM", "TZ", "PYENV_ROOT", "PYENV_VERSION",
    "VIRTUAL_ENV", "UV_CACHE_DIR", "CARGO_HOME", "NVM_DIR",
}  # fmt: skip


def test_only_the_allowlist_passes() -> None:
    env = scrubbed_env(PARENT)
    assert set(env) == KEPT | {"TMPDIR"}
    assert env["PATH"] == PARENT["PATH"]
    assert env["PYENV_ROOT"] == PARENT["PYENV_ROOT"]
    assert env["TMPDIR"] == "/tmp"


def test_pass_env_adds_names_and_patterns_but_never_secrets() -> None:
    env = scrubbed_env(PARENT, ["DATABASE_URL", "SENTRY_*", "GITHUB_TOKEN", "UV_*"])
    assert env["DATABASE_URL"] == PARENT["DATABASE_URL"]
    assert env["SENTRY_DSN"] == PARENT["SENTRY_DSN"]
    assert "GITHUB_TOKEN" not in env
    assert "UV_INDEX_TOKEN" not in env


def test_the_parent_mapping_is_not_modified() -> None:
    parent = dict(PARENT)
    scrubbed_env(parent)
    assert parent == PARENT


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("X_TOKEN_FILE", True),
        ("github_actions", True),
        ("AWS_REGION", True),
        ("SSH_AUTH_SOCK", True),
        ("SSH_TTY", False),
        ("EDITOR", False),
        ("OPUSCULE", False),
        ("VIRTUAL_ENV", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("LC_ALL", True),
        ("GOPATH", True),
        ("JAVA_HOME", True),
        ("CONDA_PREFIX", True),
        ("lc_all", False),  # names are case-sensitive
        ("XDG_RUNTIME_DIR", False),  # points at sockets in /run/user
        ("LD_PRELOAD", False),
        ("PIP_INDEX_URL", True),
        ("PIP_PASSWORD", False),
    ],
)
def test_allowed_names(name: str, allowed: bool) -> None:
    assert is_allowed_name(name) is allowed
