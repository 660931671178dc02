"""Which repository on the forge a git remote points at: `owner/name` from its URL.

Pure parsing plus one git query. Credentials embedded in a URL are never returned and
never appear in an error message.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from opus.errors import ConfigError, GitError
from opus.git import git

# `user@host:owner/name.git` — git's scp-like syntax (no scheme, a colon before any slash).
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>[^\s]+)$")
_NETWORK_SCHEMES = frozenset({"http", "https", "ssh", "git", "git+ssh", "ssh+git"})


def redact(url: str) -> str:
    """`url` with any `user:password@` part replaced by `***@`, safe to print."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^@/]+@", r"\1***@", url, flags=re.IGNORECASE)


def parse_remote(url: str) -> tuple[str, str]:
    """(owner, name) of the repository a remote URL points at.

    Understands `https://[user[:token]@]host[:port]/owner/name[.git]`,
    `git@host:owner/name[.git]` and `ssh://git@host[:port]/owner/name[.git]`.
    Raises `ConfigError` telling to set `pr.repository` when the URL says no owner/name
    (a local path, `file://`, a bare host).
    """
    path = _repo_path(url.strip())
    if path is not None:
        parts = [part for part in path.strip("/").split("/") if part]
        if len(parts) >= 2:
            owner, name = parts[-2], _strip_git_suffix(parts[-1])
            if owner and name:
                return owner, name
    raise ConfigError(
        f"cannot tell the forge repository from the remote URL {redact(url)!r}; "
        "set `pr.repository = \"owner/name\"` in opus.toml (or $OPUS_PR__REPOSITORY)"
    )


def parse_repository(value: str) -> tuple[str, str]:
    """(owner, name) from a `pr.repository` value `owner/name`; `ConfigError` otherwise."""
    parts = value.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"config key `pr.repository` must be \"owner/name\"; got {value!r}"
        )
    return parts[0], _strip_git_suffix(parts[1])


def remote_url(repo: Path, remote: str) -> str:
    """The fetch URL of `remote` in `repo`; `ConfigError` when there is no such remote."""
    try:
        return git("remote", "get-url", remote, cwd=repo)
    except GitError as exc:
        raise ConfigError(
            f"the repo {repo} has no remote {remote!r}; add it with "
            f"`git remote add {remote} URL` or set `git.remote`"
        ) from exc


def repository_for(repository: str | None, *, repo: Path, remote: str) -> tuple[str, str]:
    """(owner, name): `pr.repository` when set, else parsed from the remote's URL."""
    if repository:
        return parse_repository(repository)
    return parse_remote(remote_url(repo, remote))


def _repo_path(url: str) -> str | None:
    """The path part of a network remote URL, or None for local paths and `file://`."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _NETWORK_SCHEMES or not parts.hostname:
            return None
        return parts.path
    match = _SCP_LIKE.match(url)
    # A one-letter "host" is a Windows drive (`C:\\repo`), not a machine.
    if match is None or len(match["host"]) == 1:
        return None
    return match["path"]


def _strip_git_suffix(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name
