"""Remote URL parsing: owner/name from https, scp-like ssh and ssh:// remotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.errors import ConfigError
from opus.forges.remote import parse_remote, redact, repository_for
from tests.conftest import run_git


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/octo/hello.git", ("octo", "hello")),
        ("https://github.com/octo/hello", ("octo", "hello")),
        ("https://github.com/octo/hello/", ("octo", "hello")),
        ("https://x-access-token:ghs_abc123@github.com/octo/hello.git", ("octo", "hello")),
        ("https://user@gitea.example.com:3000/team/api.git", ("team", "api")),
        ("git@github.com:octo/hello.git", ("octo", "hello")),
        ("git@github.com:octo/hello", ("octo", "hello")),
        ("ssh://git@git.example.com:2222/team/api.git", ("team", "api")),
        ("ssh://git.example.com/team/api", ("team", "api")),
    ],
)
def test_parses_owner_and_name(url: str, expected: tuple[str, str]) -> None:
    assert parse_remote(url) == expected


@pytest.mark.parametrize(
    "url",
    ["/srv/git/api.git", "file:///srv/git/api.git", "../api", "https://github.com/",
     "C:\\repos\\api", "git@github.com:solo.git", ""],
)
def test_unparseable_url_names_pr_repository(url: str) -> None:
    with pytest.raises(ConfigError, match=r"pr\.repository"):
        parse_remote(url)


def test_credentials_never_reach_the_error_message() -> None:
    url = "https://user:hunter2secret@example.com/"
    with pytest.raises(ConfigError) as info:
        parse_remote(url)
    assert "hunter2secret" not in str(info.value)
    assert redact(url) == "https://***@example.com/"


def test_pr_repository_overrides_the_remote(git_repo: Path) -> None:
    run_git(git_repo, "remote", "add", "origin", "git@github.com:octo/hello.git")
    assert repository_for(None, repo=git_repo, remote="origin") == ("octo", "hello")
    assert repository_for("corp/real", repo=git_repo, remote="origin") == ("corp", "real")
    with pytest.raises(ConfigError, match="owner/name"):
        repository_for("just-a-name", repo=git_repo, remote="origin")


def test_missing_remote_is_a_config_error(git_repo: Path) -> None:
    with pytest.raises(ConfigError, match="no remote 'upstream'"):
        repository_for(None, repo=git_repo, remote="upstream")
