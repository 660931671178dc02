"""The child's environment: secrets removed, the rest kept."""

from __future__ import annotations

import pytest

from opus.sandbox.environment import is_secret_name, scrubbed_env

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/alice",
    "LANG": "C.UTF-8",
    "PYENV_ROOT": "/home/alice/.pyenv",
    "TMPDIR": "/var/tmp/alice",
    "ANTHROPIC_API_KEY": "sk-ant-1",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "GITHUB_TOKEN": "ghp_1",
    "GITEA_URL": "http://gitea",
    "AWS_PROFILE": "prod",
    "SSH_AUTH_SOCK": "/run/user/1000/ssh",
    "NOTIFY_SOCKET": "/run/systemd/notify",
    "OPUS_DATABASE__URL": "postgresql://x",
    "my_db_password": "hunter2",
    "Stripe_Secret": "s",
    "NPM_TOKEN": "t",
    "GOOGLE_APPLICATION_CREDENTIALS": "/k.json",
    "OPENAI_API_KEY": "sk-2",
}
SECRETS = set(PARENT) - {"PATH", "HOME", "LANG", "PYENV_ROOT", "TMPDIR"}


def test_secrets_are_removed_and_the_rest_kept() -> None:
    env = scrubbed_env(PARENT)
    assert not SECRETS & set(env)
    assert env["PATH"] == PARENT["PATH"]
    assert env["HOME"] == "/home/alice"
    assert env["PYENV_ROOT"] == PARENT["PYENV_ROOT"]
    assert env["TMPDIR"] == "/tmp"


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
