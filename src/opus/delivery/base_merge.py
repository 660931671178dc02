"""A PR branch and its moved base, in git only: where the base is now, whether the
branch is behind it, whether merging it conflicts, the merge itself, and what the coder
is told about a conflict.

opus keeps a branch a human may have pulled: the base is *merged into* it (a merge
commit with the `Opus-Job:` trailer), never rebased, and the push is a fast-forward.
Conflicts are read with `git merge-tree --write-tree` (git ≥ 2.38), which merges in the
object store without touching any worktree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from opus.delivery.deliver import has_remote
from opus.errors import GitError
from opus.git import git, git_status, is_ancestor

MAX_BASE_COMMITS = 20
"""Base commits listed to the coder for one conflict (the newest)."""
BODY_LINES = 6
"""Lines of each base commit's message body shown to the coder."""
_MARKER = re.compile(r"^(<{7}|>{7})(?: |$)", re.MULTILINE)


@dataclass(frozen=True)
class BaseState:
    """Where a PR branch stands against its base."""

    base_ref: str
    """The ref the base was read from: `refs/remotes/<remote>/<base>` or `refs/heads/<base>`."""
    base_sha: str
    head_sha: str
    """The branch's head: on the remote when it has one (a human may have pushed)."""
    behind: bool
    """The base has commits the branch does not."""
    conflicts: tuple[str, ...] = ()
    """Paths a merge of the base into the head would leave conflicted (empty: clean)."""

    @property
    def label(self) -> str:
        """The base's short name for messages and conflict markers (`origin/main`)."""
        return self.base_ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")

    @property
    def trigger(self) -> str:
        """What identifies one reaction: the base and the head it was taken on."""
        return f"base {self.base_sha} head {self.head_sha}"


def base_state(repo: Path, branch: str, base: str, *, remote: str) -> BaseState | None:
    """Fetch `base` and `branch` from `remote` (when the repo has it) and compare them.

    None when the branch does not exist (nothing delivered to compare).
    """
    base_ref, head_ref = f"refs/heads/{base}", f"refs/heads/{branch}"
    if has_remote(repo, remote):
        tracking = f"refs/remotes/{remote}"
        git("fetch", "--quiet", "--no-tags", remote,
            f"+refs/heads/{base}:{tracking}/{base}", cwd=repo)  # fmt: skip
        # The PR's head is the remote branch; a branch not pushed yet is only local.
        git("fetch", "--quiet", "--no-tags", remote,
            f"+refs/heads/{branch}:{tracking}/{branch}", cwd=repo, check=False)  # fmt: skip
        base_ref = f"{tracking}/{base}"
        if _sha(repo, f"{tracking}/{branch}"):
            head_ref = f"{tracking}/{branch}"
    base_sha, head_sha = _sha(repo, base_ref), _sha(repo, head_ref)
    if not head_sha:
        return None
    if not base_sha:
        raise GitError(f"the base branch {base!r} of {branch} is gone from {repo}; restore "
                       "it, or close the PR")
    behind = not is_ancestor(repo, base_sha, head_sha)
    conflicts = merge_conflicts(repo, head_sha, base_sha) if behind else ()
    return BaseState(base_ref, base_sha, head_sha, behind, conflicts)


def merge_conflicts(repo: Path, ours: str, theirs: str) -> tuple[str, ...]:
    """The paths a merge of `theirs` into `ours` leaves conflicted; () when it is clean."""
    code, out = git_status("merge-tree", "--write-tree", "--name-only", "--no-messages",
                           ours, theirs, cwd=repo)  # fmt: skip
    if code == 0:
        return ()
    if code != 1:
        raise GitError(f"git merge-tree {ours[:12]} {theirs[:12]} failed in {repo}: {out}")
    # Output: the tree's id, then one conflicted path a line, then a blank line.
    names = out.split("\n\n", 1)[0].splitlines()[1:]
    return tuple(name for name in names if name)


def merging(worktree: Path) -> bool:
    """True while the worktree has a merge in progress (`MERGE_HEAD`)."""
    return bool(git("rev-parse", "--verify", "--quiet", "MERGE_HEAD", cwd=worktree, check=False))


def start_merge(
    worktree: Path, sha: str, *, label: str, author: tuple[str, str]
) -> tuple[str, ...]:
    """Merge commit `sha` (the base, `label` in messages) into the worktree without
    committing; the conflicted paths. The worktree must be clean; the caller commits
    (`Worktree.commit`). git wants an identity even for a merge it does not commit:
    `author` (name, email) is given, so no user config is needed."""
    name, email = author
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}  # fmt: skip
    code, out = git_status("-c", "core.hooksPath=/dev/null", "-c", "merge.conflictStyle=merge",
                           "merge", "--no-ff", "--no-commit", "--no-edit", sha,
                           cwd=worktree, env=env)  # fmt: skip
    conflicted = git("diff", "--name-only", "--diff-filter=U", cwd=worktree).splitlines()
    if code != 0 and not conflicted:
        raise GitError(f"git merge {label} ({sha[:12]}) failed in {worktree}: {out}")
    return tuple(conflicted)


def markers_left(worktree: Path, paths: tuple[str, ...] | list[str]) -> list[str]:
    """Those of `paths` that still hold a conflict marker line (`<<<<<<< ` / `>>>>>>> `)."""
    left = []
    for rel in paths:
        try:
            text = (worktree / rel).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue  # deleted: a resolution too
        if _MARKER.search(text):
            left.append(rel)
    return left


def merge_message(state_label: str, sha: str, branch: str, conflicts: tuple[str, ...]) -> str:
    """The merge commit's message (the trailer is added by `Worktree.commit`)."""
    subject = f"Merge {state_label} ({sha[:10]}) into {branch}"
    if not conflicts:
        return f"{subject}\n\nThe base moved; merged cleanly."
    listed = "\n".join(f"- {path}" for path in conflicts)
    return f"{subject}\n\nConflicts resolved in:\n{listed}"


def conflict_report(
    worktree: Path,
    *,
    fr: str,
    label: str,
    sha: str,
    conflicts: tuple[str, ...],
) -> str:
    """What the coder is told: the conflicted files and both sides' intent — the FR for
    this branch, the base commits (subject and body) that touched those files."""
    fork = git("merge-base", "HEAD", sha, cwd=worktree, check=False)
    listed = "\n".join(f"- {path}" for path in conflicts)
    theirs = _commits(worktree, f"{fork}..{sha}" if fork else sha, conflicts)
    ours = _commits(worktree, f"{sha}..HEAD" if fork else "HEAD", conflicts, bodies=False)
    return (
        f"The base branch `{label}` moved (now at {sha[:10]}) and this pull request can no "
        f"longer merge. opus has merged `{label}` into the branch; these files have "
        f"conflicts (git's markers: `<<<<<<< HEAD` is this branch, `>>>>>>> {sha}` the "
        f"base):\n{listed}\n\n"
        f"This branch's side: {fr}\nIts commits on these files:\n{ours or '- (none)'}\n\n"
        f"The base's side — commits on `{label}` since the branch left it that touch these "
        f"files:\n{theirs or '- (none listed)'}\n\n"
        "Resolve every conflict so that both intents hold, remove every marker line, and "
        "keep the tests passing. Do not commit and do not run git merge or rebase: opus "
        "commits the merge."
    )


def _commits(worktree: Path, span: str, paths: tuple[str, ...], *, bodies: bool = True) -> str:
    fmt = "%h %s%x1f%b%x1e" if bodies else "%h %s%x1f%x1e"
    out = git("log", f"--max-count={MAX_BASE_COMMITS}", f"--format={fmt}", span, "--",
              *paths, cwd=worktree, check=False)  # fmt: skip
    lines = []
    for record in out.split("\x1e"):
        subject, _, body = record.strip("\n").partition("\x1f")
        if not subject:
            continue
        lines.append(f"- {subject}")
        lines += [f"    {text}" for text in body.strip().splitlines()[:BODY_LINES] if text]
    return "\n".join(lines)


def _sha(repo: Path, ref: str) -> str:
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo, check=False)
