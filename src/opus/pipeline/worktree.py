"""A job's git worktree: where its agents work, on its own branch, under opus's state dir.

Each job gets `<state_dir>/worktrees/job-<id>` on branch `<prefix><fr-id>-<slug>`.
`ensure` is idempotent and rebuilds what a crash or another host left behind: a live
worktree is reused; a vanished one is recreated from the branch; with no local branch,
the job's last checkpoint is fetched from `refs/opus/wip/<job>` on the remote.

Every git command runs with hooks disabled, so nothing in the target repository's
hooks runs with opus's privileges. Before every `worktree add/remove/prune` (under the
repository's worktree lock) the residue of a killed git is repaired first
(`worktree_repair`); a failed add is repaired and tried once more, so a fault the
repair heals never reaches the caller (nor the infrastructure breaker).

Commit messages are built so that the `Opus-Job:` trailer is the last paragraph and
parses whatever the agent's summary says (`commit_message`); each sha opus commits is
also recorded in the repository (`opus.git.record_own_commit`).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opus.errors import GitError
from opus.git import branch_exists, current_branch, git, is_own_commit, record_own_commit
from opus.pipeline.worktree_repair import drop_stale_locks, drop_stale_ref_lock, repair_admin

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


def commit_message(text: str, job_id: int) -> str:
    """`text` as a commit message whose last paragraph is the trailer `Opus-Job: <id>`.

    Git's trailer parser takes the last paragraph, but stops at a line starting with
    `---` and whitespace (a patch divider): such lines are indented by one space. NULs
    cannot go through argv; `\r` becomes a line break. Committed with
    `--cleanup=whitespace`, so `#` lines in the summary are kept, not stripped.
    """
    clean = text.replace("\0", "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [f" {line}" if line.startswith("---") else line for line in clean.splitlines()]
    body = "\n".join(line.rstrip() for line in lines).strip("\n")
    if not body.strip():
        body = f"opus job {job_id}"
    return f"{body}\n\n{TRAILER_KEY}: {job_id}\n"


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
        with _worktrees_lock(repo):
            if _is_worktree_on(path, branch):
                _drop_locks(path)
                return cls(repo, path, branch)
            new_branch: list[str] = []
            if branch_exists(repo, branch):
                start = branch
            elif _fetch_wip(repo, remote, job_id):
                new_branch, start = ["-b", branch], wip_ref(job_id)
            else:
                new_branch, start = ["-b", branch], _base_commit(repo, base)
            _add(repo, path, [*new_branch, str(path), start], branch)
        return cls(repo, path, branch)

    def head(self) -> str:
        """The sha of the worktree's HEAD."""
        return _git("rev-parse", "HEAD", cwd=self.path)

    def commit(self, message: str, *, job_id: int, author: tuple[str, str]) -> str | None:
        """Commit every change (new files too, .gitignore respected) as `author`.

        The message gets the trailer `Opus-Job: <job_id>`. Returns the new sha, or None
        when there was nothing to commit. A merge in progress is always committed (a
        merge commit, even when the merged side changes nothing here).
        """
        _drop_special_files(self.path)
        _git("add", "--all", cwd=self.path)
        merge = _git("rev-parse", "--verify", "--quiet", "MERGE_HEAD", cwd=self.path, check=False)
        if not merge and not _git("diff", "--cached", "--name-only", cwd=self.path):
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
            "commit", "--quiet", "--no-verify", "--cleanup=whitespace",
            "-m", commit_message(message, job_id),
            cwd=self.path, env=identity,
        )  # fmt: skip
        sha = self.head()
        record_own_commit(self.path, sha)
        return sha

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


def fresh_branch(
    repo: Path, name: str, *, base: str, in_use: Callable[[str], bool]
) -> str:
    """The branch for a job's first start, which always starts from `base`.

    `name` when no branch has it. When an earlier attempt (a failed or cancelled job)
    left it, it is deleted so the new job starts from `base` — only when every commit
    on it is opus's own, no worktree has it checked out and no open PR uses it
    (`in_use`); the push then replaces the remote branch with `--force-with-lease`.
    Otherwise the first free `name-2`, `name-3`, ….
    """
    candidate, number = name, 1
    with _worktrees_lock(repo):
        while branch_exists(repo, candidate):
            if _reclaimable(repo, candidate, base, in_use):
                _git("branch", "--quiet", "-D", candidate, cwd=repo)
                break
            number += 1
            candidate = f"{name}-{number}"
    return candidate


def _reclaimable(repo: Path, branch: str, base: str, in_use: Callable[[str], bool]) -> bool:
    checked_out = _git("worktree", "list", "--porcelain", cwd=repo).splitlines()
    if f"branch refs/heads/{branch}" in checked_out:
        return False
    theirs = _git("rev-list", f"refs/heads/{branch}", "--not", base, cwd=repo).split()
    if not all(is_own_commit(repo, sha) for sha in theirs):
        return False
    return not in_use(branch)


def remove_worktree_at(repo: Path, path: Path) -> None:
    """Remove the worktree at `path` of `repo` if there is one (the branch is kept).

    For callers that hold no `Worktree` (cancel, PR closed); takes the same lock.
    """
    if path.exists():
        with _worktrees_lock(repo):
            _clear(repo, path)


def _drop_special_files(path: Path) -> list[str]:
    """Delete FIFOs, sockets and devices an agent left among the changes.

    Git cannot commit them, and `git add --all` fails outright on one that replaced a
    tracked file: an agent could otherwise make every checkpoint fail. Returns the paths.
    """
    out = _git("status", "--porcelain=v1", "-z", "--untracked-files=all", cwd=path)
    dropped = []
    for record in out.split("\0"):
        rel = record[3:]
        if len(record) < 4 or record[:2] == "R ":
            continue
        target = path / rel
        try:
            mode = os.lstat(target).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
            target.unlink()
            dropped.append(rel)
    return dropped


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
    a `worktree prune` can delete it. The lock is a `flock` on a file in the common git dir
    (the kernel drops it when its holder dies). Holding it, the residue of killed git
    commands is repaired before anything else happens.
    """
    common = _common_dir(repo)
    with (common / "opus-worktrees.lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            repair_admin(common)
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _common_dir(repo: Path) -> Path:
    common = Path(_git("rev-parse", "--git-common-dir", cwd=repo))
    return common if common.is_absolute() else repo / common


def _add(repo: Path, path: Path, args: list[str], branch: str) -> None:
    """`git worktree add args` at `path` (lock held); after a failure, repair and retry once."""
    for attempt in (1, 2):
        _clear(repo, path)
        drop_stale_ref_lock(_common_dir(repo), branch)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _git("worktree", "add", "--quiet", *args, cwd=repo)
            return
        except GitError:
            if attempt == 2:
                raise
            repair_admin(_common_dir(repo))


def _drop_locks(path: Path) -> None:
    """Drop lock files a killed git left in the job's own worktree (its worker owns it)."""
    admin = _git("rev-parse", "--absolute-git-dir", cwd=path, check=False)
    if admin:
        drop_stale_locks(Path(admin))


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
