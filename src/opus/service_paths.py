"""The paths the systemd unit leaves writable (`ReadWritePaths=`).

`ProtectSystem=strict` and `ProtectHome=read-only` make everything else read-only, and a
path missing here shows up only later, as a write that fails inside a job: the vault, the
state dir, the default repo (git writes worktree metadata and branches there) and, when
that repo pushes to a directory on this host (a bare `remote.git`, as in the README's
offline recipe), that directory too, since `git push` writes its objects and refs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from opus.config import Settings
from opus.git import git, is_repo


def writable_paths(settings: Settings) -> list[Path]:
    """The vault, the state dir, the default repo and its push remote when it is local."""
    paths = [settings.vault_path, settings.state_dir]
    repo = settings.default_repo
    if repo is not None:
        paths.append(repo)
        remote = local_remote(repo, settings.git.remote)
        if remote is not None:
            paths.append(remote)
    return list(dict.fromkeys(paths))


def local_remote(repo: Path, remote: str) -> Path | None:
    """The directory `git push <remote>` writes into when it is on this host.

    None for a network URL (`https://…`, `git@host:…`), a repo or remote that does not
    exist yet (`opus doctor` says so), or a remote that is not a repository.
    """
    if not is_repo(repo):
        return None
    url = git("remote", "get-url", "--push", remote, cwd=repo, check=False)
    path = _path_of(url, repo)
    return path if path is not None and is_repo(path) else None


def _path_of(url: str, repo: Path) -> Path | None:
    if not url:
        return None
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if "://" in url or ":" in url.partition("/")[0]:
        return None  # a network URL, or scp-like `host:path`
    return (repo / Path(url).expanduser()).resolve()
