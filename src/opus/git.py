"""Running git: one function, errors wrapped into `GitError` with git's own words."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from opus.errors import GitError

GIT_TIMEOUT_S = 300.0


def git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run `git args...` in `cwd` and return stdout without the trailing newline.

    Hooks and user config that could prompt are neutralised: no terminal prompts,
    no pager. Raises `GitError` when git exits non-zero and `check` is set.
    """
    proc = _run(args, cwd, env)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {detail}")
    return proc.stdout.rstrip("\n")


def git_status(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `git args...` where the exit code is the answer (`merge-tree`, `merge-base
    --is-ancestor`); (exit code, stdout — or stderr when stdout is empty)."""
    proc = _run(args, cwd, env)
    return proc.returncode, (proc.stdout or proc.stderr).rstrip("\n")


def _run(
    args: tuple[str, ...], cwd: Path, env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", **(env or {})}
    full_env.pop("NOTIFY_SOCKET", None)
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args)} took over {GIT_TIMEOUT_S:.0f}s in {cwd}") from exc
    return proc


def is_ancestor(cwd: Path, older: str, newer: str) -> bool:
    """True when commit `older` is reachable from `newer` (False when either is unknown)."""
    return git_status("merge-base", "--is-ancestor", older, newer, cwd=cwd)[0] == 0


def is_repo(path: Path) -> bool:
    """True when `path` is inside a git work tree or is a bare repository."""
    if not path.is_dir():
        return False
    out = git("rev-parse", "--is-inside-work-tree", "--is-bare-repository", cwd=path, check=False)
    return "true" in out.split()


def current_branch(repo: Path) -> str | None:
    """The branch HEAD points at, or None when detached."""
    out = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=repo, check=False)
    return out or None


def branch_exists(repo: Path, branch: str) -> bool:
    out = git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo, check=False)
    return bool(out)


OWN_COMMITS = "opus-commits"
"""File in the repository's common git dir listing every sha opus committed, one a line.

The sandbox mounts the git dir read-only, so an agent cannot add to it; it lets opus
recognise its own commits even where a trailer was lost (e.g. a commit made by an older
opus whose trailer sat mid-message)."""


def _own_commits_file(cwd: Path) -> Path:
    common = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd))
    return common / OWN_COMMITS


def record_own_commit(cwd: Path, sha: str) -> None:
    """Note that opus made commit `sha` in the repository of `cwd`."""
    with _own_commits_file(cwd).open("a", encoding="ascii") as handle:
        handle.write(sha + "\n")


def own_commits(cwd: Path) -> frozenset[str]:
    """Every sha opus recorded making in the repository of `cwd`."""
    try:
        text = _own_commits_file(cwd).read_text(encoding="ascii", errors="replace")
    except (OSError, GitError):
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def trailer_job(cwd: Path, sha: str, key: str = "Opus-Job") -> str:
    """The value of trailer `key` in commit `sha`'s message, or "" when it has none."""
    fmt = f"--format=%(trailers:key={key},valueonly,separator=%x2C)"
    return git("log", "-1", fmt, sha, cwd=cwd, check=False).strip()


def is_own_commit(cwd: Path, sha: str) -> bool:
    """True when opus made `sha`: it carries the `Opus-Job` trailer or is recorded."""
    return bool(trailer_job(cwd, sha)) or sha in own_commits(cwd)
