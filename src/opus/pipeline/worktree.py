"""A job's git worktree: where its agents work, on its own branch, under opus's state dir.

Each job gets `<state_dir>/worktrees/job-<id>` on branch `<prefix><fr-id>-<slug>`.
`ensure` is idempotent and rebuilds what a crash or another host left behind: a live
worktree is reused; a vanished one is recreated from the branch; with no local branch,
the job's last checkpoint is fetched from `refs/opus/wip/<job>` on the remote.

Every git command runs with hooks disabled, so nothing in the target repository's
hooks runs with opus's privileges.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opus.errors import GitError
from opus.git import branch_exists, current_branch, git

SLUG_MAX = 40
TRAILER_KEY = "Opus-Job"
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


def slugify(text: str, max_len: int | None = None) -> str:
    """Lowercase ascii words joined by hyphens, at most `max_len` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if max_len is not None:
        slug = slug[:max_len].rstrip("-")
    return slug


def branch_name(prefix: str, fr_id: str, title: str) -> str:
    """`<prefix><fr-id-lowercase>-<slug of title>`, e.g. `opus/fr-061-add-rate-limiting`."""
    parts = [part for part in (slugify(fr_id), slugify(title, SLUG_MAX)) if part]
    return prefix + "-".join(parts)


def wip_ref(job_id: int) -> str:
    """The ref on the remote that holds a job's latest checkpoint."""
    return f"refs/opus/wip/{job_id}"


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    return git(*NO_HOOKS, *args, cwd=cwd, env=env, check=check)


@dataclass(frozen=True)
class Worktree:
    """A linked git worktree at `path` on `branch` of `repo`."""

    repo: Path
    path: Path
    branch: str

    @classmethod
    def ensure(
        cls,
        repo: Path,
        state_dir: Path,
        job_id: int,
        branch: str,
        base: str | None,
        *,
        remote: str,
    ) -> Worktree:
        """The job's worktree on `branch`, reused or (re)built; `base` defaults to HEAD's branch."""
        repo = Path(_git("rev-parse", "--show-toplevel", cwd=repo))
        path = (state_dir / "worktrees" / f"job-{job_id}").resolve()
        if _is_worktree_on(path, branch):
            return cls(repo, path, branch)
        new_branch: list[str] = []
        if branch_exists(repo, branch):
            start = branch
        elif _fetch_wip(repo, remote, job_id):
            new_branch, start = ["-b", branch], wip_ref(job_id)
        else:
            new_branch, start = ["-b", branch], _base_commit(repo, base)
        with _worktrees_lock(repo):
            _clear(repo, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _git("worktree", "add", "--quiet", *new_branch, str(path), start, cwd=repo)
        return cls(repo, path, branch)

    def head(self) -> str:
        """The sha of the worktree's HEAD."""
        return _git("rev-parse", "HEAD", cwd=self.path)

    def commit(self, message: str, *, job_id: int, author: tuple[str, str]) -> str | None:
        """Commit every change (new files too, .gitignore respected) as `author`.

        The message gets the trailer `Opus-Job: <job_id>`. Returns the new sha, or None
        when there was nothing to commit.
        """
        _git("add", "--all", cwd=self.path)
        if not _git("diff", "--cached", "--name-only", cwd=self.path):
            return None
        name, email = author
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        _git(
            "-c", "commit.gpgsign=false",
            "commit", "--quiet", "--no-verify",
            "-m", message.strip() or f"opus job {job_id}",
            "--trailer", f"{TRAILER_KEY}: {job_id}",
            cwd=self.path, env=identity,
        )  # fmt: skip
        return self.head()

    def discard_uncommitted(self) -> None:
        """Drop edits and untracked files, back to HEAD (the last checkpoint)."""
        _git("reset", "--quiet", "--hard", "HEAD", cwd=self.path)
        _git("clean", "-fdq", cwd=self.path)

    def changed_paths(self, base: str) -> list[str]:
        """Paths the branch's commits changed since it left `base`."""
        out = _git("diff", "--name-only", "--no-renames", f"{base}...HEAD", cwd=self.path)
        return [line for line in out.splitlines() if line]

    def diff(self, base: str) -> str:
        """The branch's committed changes since it left `base`, as a unified diff."""
        return _git("diff", "--no-color", "--no-ext-diff", f"{base}...HEAD", cwd=self.path)

    def push_wip(self, remote: str, job_id: int) -> None:
        """Force-push HEAD to `refs/opus/wip/<job_id>` on `remote` (opus's own namespace)."""
        _git(
            "push",
            "--quiet",
            "--no-verify",
            "--force",
            remote,
            f"HEAD:{wip_ref(job_id)}",
            cwd=self.path,
        )

    def remove(self) -> None:
        """Delete the worktree (uncommitted edits too); the branch is kept."""
        with _worktrees_lock(self.repo):
            _clear(self.repo, self.path)


def remove_worktree_at(repo: Path, path: Path) -> None:
    """Remove the worktree at `path` of `repo` if there is one (the branch is kept).

    For callers that hold no `Worktree` (cancel, PR closed); takes the same lock.
    """
    if path.exists():
        with _worktrees_lock(repo):
            _clear(repo, path)


def _is_worktree_on(path: Path, branch: str) -> bool:
    """True when `path` is a live worktree (its own top level) with `branch` checked out."""
    if not (path / ".git").exists():
        return False
    top = _git("rev-parse", "--show-toplevel", cwd=path, check=False)
    return bool(top) and Path(top).resolve() == path and current_branch(path) == branch


@contextmanager
def _worktrees_lock(repo: Path) -> Iterator[None]:
    """Hold `repo`'s worktree lock: one `worktree add/remove/prune` at a time on this host.

    Jobs of one daemon (threads) and of other daemons on this host (processes) share the
    repository's `.git/worktrees`. Unserialized, one job's `worktree add` can read another
    job's half-made entry ("failed to read .git/worktrees/job-N/commondir") and fail, and
    a `worktree prune` can delete it. The lock is a `flock` on a file in the common git dir.
    """
    common = Path(_git("rev-parse", "--git-common-dir", cwd=repo))
    lock_path = (common if common.is_absolute() else repo / common) / "opus-worktrees.lock"
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _clear(repo: Path, path: Path) -> None:
    """Remove whatever is at `path` and forget stale worktree registrations."""
    if path.exists():
        _git("worktree", "remove", "--force", "--force", str(path), cwd=repo, check=False)
        # A half-deleted or foreign directory is not a worktree git can remove.
        shutil.rmtree(path, ignore_errors=True)
    _git("worktree", "prune", cwd=repo)


def _fetch_wip(repo: Path, remote: str, job_id: int) -> bool:
    """Fetch the job's checkpoint ref from `remote` into the same local ref; False if none."""
    if not _git("remote", "get-url", remote, cwd=repo, check=False):
        return False
    ref = wip_ref(job_id)
    if not _git("ls-remote", remote, ref, cwd=repo, check=False):
        return False
    _git("fetch", "--quiet", "--no-tags", remote, f"+{ref}:{ref}", cwd=repo)
    return True


def _base_commit(repo: Path, base: str | None) -> str:
    """The branch to start from: `base`, or the repo's current branch."""
    base = base or current_branch(repo)
    if base is None:
        raise GitError(f"{repo} has a detached HEAD; set `base:` in the note to a branch name")
    if not _git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", cwd=repo, check=False):
        raise GitError(f"base `{base}` does not exist in {repo}; set `base:` to an existing branch")
    return base
