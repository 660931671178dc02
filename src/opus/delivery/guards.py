"""Guards that run before anything leaves the machine. Each raises `DeliveryBlocked`
with the list of what is wrong and what to do; none of them changes the worktree.

- `check_branch`: never push a protected branch, nor one opus did not name.
- `check_remote_history`: never overwrite commits on the remote branch that opus did
  not make; returns the lease to force with when only opus's own commits would go.
- `check_paths`: the change stays inside the FR's `allowed_paths`.
- `check_secrets`: no credentials in the added lines or the PR body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

from opus.config import GitConfig
from opus.delivery.secrets import PR_BODY, added_lines, scan_added
from opus.errors import DeliveryBlocked
from opus.git import git, is_ancestor, own_commits

TRAILER_KEY = "Opus-Job"
"""The trailer on every commit opus makes (`Opus-Job: <job id>`)."""


@dataclass(frozen=True)
class ForeignCommit:
    """A commit on the remote branch that opus did not make."""

    sha: str
    author: str
    subject: str

    def __str__(self) -> str:
        return f"{self.sha[:12]} {self.subject!r} by {self.author}"


# --------------------------------------------------------------------------- branch


def check_branch(branch: str, git_cfg: GitConfig) -> None:
    """Refuse a protected branch, or one outside `git.branch_prefix`."""
    short = branch.removeprefix("refs/heads/")
    if short in git_cfg.protected:
        raise DeliveryBlocked(
            f"refusing to push {short!r}: it is in `git.protected` "
            f"({', '.join(git_cfg.protected)}); opus only pushes its own branches"
        )
    if not short.startswith(git_cfg.branch_prefix) or short == git_cfg.branch_prefix:
        raise DeliveryBlocked(
            f"refusing to push {short!r}: opus only pushes branches starting with "
            f"`git.branch_prefix` ({git_cfg.branch_prefix!r})"
        )


# --------------------------------------------------------------------------- remote history


def remote_head(worktree: Path, remote: str, branch: str) -> str | None:
    """The sha of `branch` on `remote`, or None when the remote has no such branch."""
    out = git("ls-remote", "--heads", remote, f"refs/heads/{branch}", cwd=worktree)
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def check_remote_history(worktree: Path, branch: str, *, remote: str) -> str | None:
    """Check that pushing HEAD to `remote`/`branch` loses no one else's work.

    Returns None when the push is new or a fast-forward, or the remote sha to pass as
    `--force-with-lease` when every remote-only commit carries the `Opus-Job:` trailer.
    Raises `DeliveryBlocked` listing the foreign commits otherwise.
    """
    theirs = remote_head(worktree, remote, branch)
    if theirs is None:
        return None
    git("fetch", "--no-tags", "--quiet", remote, f"refs/heads/{branch}", cwd=worktree)
    if is_ancestor(worktree, theirs, "HEAD"):
        return None
    foreign = foreign_commits(worktree, theirs, "HEAD")
    if foreign:
        _refuse(
            f"refusing to push {branch!r}: {remote}/{branch} has commits opus did not make "
            "and a push would overwrite them",
            foreign,
            "merge or drop them on the remote branch (or delete it), then retry the job",
        )
    return theirs


def foreign_commits(worktree: Path, theirs: str, ours: str) -> list[ForeignCommit]:
    """Commits reachable from `theirs` but not `ours` that opus did not make: without the
    `Opus-Job:` trailer and not in the repository's record of opus's commits."""
    fmt = f"%H%x1f%an <%ae>%x1f%s%x1f%(trailers:key={TRAILER_KEY},valueonly,separator=%x2C)%x1e"
    out = git("log", f"--format={fmt}", theirs, f"^{ours}", cwd=worktree)
    recorded = own_commits(worktree)
    commits = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 4 and not fields[3].strip() and fields[0] not in recorded:
            commits.append(ForeignCommit(sha=fields[0], author=fields[1], subject=fields[2]))
    return commits


# --------------------------------------------------------------------------- paths


def check_paths(paths: Iterable[str], allowed: Sequence[str]) -> None:
    """Refuse changes to paths no `allowed` pattern matches (no patterns: all allowed)."""
    if not allowed:
        return
    outside = sorted(p for p in set(paths) if not any(path_matches(p, a) for a in allowed))
    if outside:
        _refuse(
            f"the change touches paths outside allowed_paths ({', '.join(allowed)})",
            outside,
            "widen `allowed_paths` in the FR note, or retry so the coder keeps to it",
        )


def path_matches(path: str, pattern: str) -> bool:
    """Does repo-relative `path` match `pattern`?

    Patterns match the whole path from the repo root: `*` and `?` stay within one
    directory, `**` spans any depth (`src/**` is everything under src/, `**/*.py` every
    Python file), `[abc]` is a class, and a trailing `/` means everything below.
    """
    return _compile(pattern).fullmatch(path.lstrip("/").removeprefix("./")) is not None


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/").removeprefix("./")
    if pattern.endswith("/"):
        pattern += "**"
    out, i = [], 0
    while i < len(pattern):
        token, i = _glob_token(pattern, i)
        out.append(token)
    return re.compile("".join(out))


def _glob_token(pattern: str, i: int) -> tuple[str, int]:
    """The regex for the glob token at `pattern[i]` and the index after it."""
    if pattern.startswith("**/", i):
        return "(?:.*/)?", i + 3
    if pattern.startswith("**", i):
        return ".*", i + 2
    char = pattern[i]
    if char == "*":
        return "[^/]*", i + 1
    if char == "?":
        return "[^/]", i + 1
    if char == "[":
        end = pattern.find("]", i + 2)
        if end > 0:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body.replace("\\", "\\\\")
            return f"[{body}]", end + 1
    return re.escape(char), i + 1


# --------------------------------------------------------------------------- secrets


def check_secrets(worktree: Path, start: str, *, pr_body: str = "") -> None:
    """Refuse when any commit in `start..HEAD` adds a likely secret, or the PR body holds
    one. Every commit counts, not just the final diff: a key added in one stage and
    deleted in the next would still be pushed in the branch's history."""
    files = added_in_history(worktree, start)
    findings = scan_added(files, texts={PR_BODY: pr_body} if pr_body else None)
    if findings:
        _refuse(
            "likely secrets in the change (commit:file:line: kind)",
            findings,
            "remove them from the branch history (and rotate them if they are real), "
            "then retry the job",
        )


def added_in_history(worktree: Path, start: str) -> dict[str, dict[int, str]]:
    """`sha:path` (git's own notation) → {line: text} for the lines each commit in
    `start..HEAD` adds. A merge commit adds what its conflict resolution wrote
    (`--remerge-diff`: the merge as committed against git's own merge with markers);
    what it brings in from the merged side is that side's commits, not this branch's."""
    files: dict[str, dict[int, str]] = {}
    for kind in (("--no-merges",), ("--merges", "--remerge-diff")):
        out = git(
            "-c", "core.quotePath=false", "log", "-p", *kind, "--no-color",
            "--no-ext-diff", "--no-renames", "--unified=0", "--format=%x00%h",
            f"{start}..HEAD", cwd=worktree,
        )  # fmt: skip
        for chunk in out.split("\x00")[1:]:
            sha, _, patch = chunk.partition("\n")
            for path, lines in added_lines(patch).items():
                files[f"{sha.strip()}:{path}"] = lines
    return files


def _refuse(problem: str, items: Iterable[object], advice: str) -> NoReturn:
    """Raise `DeliveryBlocked`: the problem, one indented line per item, what to do."""
    listing = "\n".join(f"  {item}" for item in items)
    raise DeliveryBlocked(f"{problem}:\n{listing}\n{advice}")
