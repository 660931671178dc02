"""Readiness: can this FR start? Checked before any agent spends a token.

The repo must be a git repository with a commit, the base branch must exist, and a test
command must resolve (the FR's, else the repo's `.opus.toml`, else detected from the
base branch's files). Every refusal is a `NotReady` telling the user what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opus.errors import NotReady
from opus.git import branch_exists, current_branch, git, is_repo
from opus.pipeline.tester import MARKERS_LOOKED_FOR, REPO_CONFIG, TreeView, command_for


@dataclass(frozen=True)
class ReadyInfo:
    """What readiness resolved: the base branch and the test command to use."""

    base_branch: str
    test_command: str


def check_ready(
    repo: Path,
    base: str | None,
    test_command: str | None,
    *,
    remote: str | None = None,
) -> ReadyInfo:
    """Resolve the base branch and the test command of an FR, or raise `NotReady`.

    `remote` is the remote a forge needs (None with the `local` provider, which can
    deliver a branch that stays in the repo).
    """
    _check_repo(repo)
    if remote is not None:
        _check_remote(repo, remote)
    branch = _base_branch(repo, base)
    command = command_for(test_command, TreeView(repo, f"refs/heads/{branch}"))
    if command is None:
        raise NotReady(
            f"no test command for {repo} on `{branch}`: none of {MARKERS_LOOKED_FOR} found; "
            f'set `test_command:` in the note, or test_command = "..." in {REPO_CONFIG} '
            "at the repo root"
        )
    return ReadyInfo(base_branch=branch, test_command=command)


def _check_repo(repo: Path) -> None:
    if not repo.exists():
        raise NotReady(
            f"repo {repo} does not exist; set `repo:` in the note (relative to the vault's "
            "parent) or `git.default_repo` in opus.toml to an existing git repository"
        )
    if not is_repo(repo):
        raise NotReady(
            f"{repo} is not a git repository; run `git init` there and commit, or point "
            "`repo:` at a git repository"
        )
    if not git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", cwd=repo, check=False):
        raise NotReady(
            f"{repo} has no commits yet; commit at least once so opus has a base to branch from"
        )


def _check_remote(repo: Path, remote: str) -> None:
    if remote not in git("remote", cwd=repo).split():
        raise NotReady(
            f"the repo {repo} has no remote `{remote}`, and the PR provider needs one to "
            f"push the branch to; add it with `git -C {repo} remote add {remote} URL`, set "
            '`git.remote` to an existing remote, or use pr.provider = "local"'
        )


def _base_branch(repo: Path, base: str | None) -> str:
    if base is None:
        head = current_branch(repo)
        if head is None:
            raise NotReady(
                f"HEAD of {repo} is detached, so there is no default base branch; "
                f"set `base:` in the note to one of: {_branch_list(repo)}"
            )
        return head
    if not branch_exists(repo, base):
        raise NotReady(
            f"base branch `{base}` does not exist in {repo}; set `base:` to one of: "
            f"{_branch_list(repo)}"
        )
    return base


def _branch_list(repo: Path) -> str:
    out = git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=repo, check=False)
    return ", ".join(sorted(out.split())) or "(no branches)"
