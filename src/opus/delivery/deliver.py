"""Delivery: guards → push → find-or-open the PR. Idempotent, and never merges.

`render_pr_body` is pure; `push_branch` and `deliver` are the thin shells around git and
the `Forge`. Functions take the worktree path and branch name, not a `Worktree` object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from opus.config import GitConfig, Settings
from opus.delivery.guards import check_branch, check_paths, check_remote_history, check_secrets
from opus.domain import Job
from opus.errors import DeliveryBlocked, GitError
from opus.forges.remote import remote_url
from opus.git import current_branch, git, is_ancestor
from opus.seams import Forge, PullRequest

SUMMARY_CHARS = 3000
TEST_TAIL_LINES = 30


@dataclass(frozen=True)
class DeliveryReport:
    """What the PR body tells the human reviewer about the job."""

    fr_id: str
    title: str
    fr_summary: str
    """The FR's body (or its summary section)."""
    fr_link: str = ""
    """Where the FR note lives: a path or a URL."""
    plan_summary: str = ""
    plan_steps: tuple[str, ...] = ()
    test_summary: str = ""
    """One line, e.g. "`pytest -q` passed (exit 0, 2.1s)"."""
    test_tail: str = ""
    review_verdict: str = ""
    review_summary: str = ""
    iterations: int = 1
    cost_usd: float = 0.0
    baseline: str = ""
    """One line about the tests on the untouched base, e.g. "baseline: 737 passed in 41 s"."""
    notices: tuple[str, ...] = ()
    """What the reviewer must know about the change (e.g. it edits opus's repo config)."""
    location: str = ""
    """Where the branch is when it was not pushed (a repo without a remote)."""
    conversation: str = ""
    """The questions asked and a person's answers (markdown list), if any."""
    assumptions: tuple[str, ...] = ()
    """Open questions of the FR planned with their recommendation (`recommend` mode)."""


def pr_title(fr_id: str, title: str) -> str:
    """`FR-061: Add rate limiting` — the local forge reads the FR id back from it."""
    return f"{fr_id}: {title}"


def render_pr_body(report: DeliveryReport) -> str:
    """The PR description: FR summary and link, plan, test result, review, rounds, cost."""
    parts = [f"## {pr_title(report.fr_id, report.title)}", _clip(report.fr_summary.strip())]
    if report.fr_link:
        parts.append(f"Feature request: `{report.fr_link}`")
    if report.location:
        parts.append(report.location)
    if report.notices:
        parts.append("## Attention\n\n" + "\n".join(f"- {n}" for n in report.notices))
    parts.append("## Plan\n\n" + _plan(report))
    if report.assumptions:
        parts.append("## Assumptions\n\nThe feature request left these questions open; the "
                     "plan took each recommendation:\n\n"
                     + "\n".join(f"- {line}" for line in report.assumptions))
    if report.conversation.strip():
        parts.append("## Questions and answers\n\n" + report.conversation.strip())
    tests = report.test_summary or "no test result recorded"
    parts.append("## Tests\n\n" + tests + (f"\n\n{report.baseline}" if report.baseline else ""))
    if report.test_tail.strip():
        tail = "\n".join(report.test_tail.strip().splitlines()[-TEST_TAIL_LINES:])
        parts.append(f"<details><summary>test output (tail)</summary>\n\n```\n{tail}\n```\n\n"
                     "</details>")
    verdict = f"**{report.review_verdict}** — " if report.review_verdict else ""
    parts.append("## Review\n\n" + verdict + (report.review_summary.strip() or "no summary"))
    rounds = "round" if report.iterations == 1 else "rounds"
    parts.append(
        f"---\n{report.iterations} code→test→review {rounds}, "
        f"cost ${report.cost_usd:.2f}. Opened by opus; a human reviews and merges."
    )
    return "\n\n".join(part for part in parts if part) + "\n"


def push_branch(worktree: Path, branch: str, *, remote: str, git_cfg: GitConfig) -> str:
    """Push the worktree's HEAD to `remote`/`branch` after the push guards; returns the sha.

    A fast-forward is pushed plainly; history that only opus made is replaced with
    `--force-with-lease` pinned to the sha the guard inspected; anything else is refused.
    Hooks are skipped: the worktree's content (and a `core.hooksPath` inside it) was
    written by an agent and must not run outside the sandbox.
    """
    check_branch(branch, git_cfg)
    remote_url(worktree, remote)  # a ConfigError naming the remote when it is missing
    lease = check_remote_history(worktree, branch, remote=remote)
    args = ["push", "--no-verify", "--quiet", "--porcelain"]
    if lease is not None:
        args.append(f"--force-with-lease=refs/heads/{branch}:{lease}")
    git(*args, remote, f"HEAD:refs/heads/{branch}", cwd=worktree)
    return git("rev-parse", "HEAD", cwd=worktree)


def deliver(
    job: Job, worktree: Path, forge: Forge, settings: Settings, report: DeliveryReport
) -> PullRequest:
    """Guards, push, then the PR for `job.branch`: the existing one if there is one
    (a restart never opens a second), else a new one. Never merges.

    Only an open PR is reused: after `opus retry` of a job whose PR was closed, the
    closed PR stays closed and the new round gets a PR of its own.

    Raises `DeliveryBlocked` when a guard refuses, `ForgeError`/`GitError` on failures.
    """
    branch = job.branch
    if not branch:
        raise DeliveryBlocked(f"job {job.id} ({job.fr_id}) has no branch to deliver; "
                              "retry the job so its worktree is set up again")
    check_branch(branch, settings.git)
    base = job.base or _default_base(job.repo)
    start = fork_point(worktree, base, remote=settings.git.remote)
    check_paths(changed_paths(worktree, start), _allowed(job))
    if settings.pr.provider == "local" and not has_remote(worktree, settings.git.remote):
        # Nothing to push to: the local PR note points at the branch in the repo itself.
        location = unpushed_location(job.repo, branch, base, settings.git.remote)
        report = replace(report, location=location)
        body = render_pr_body(report)
        check_secrets(worktree, start, pr_body=body)
    else:
        body = render_pr_body(report)
        check_secrets(worktree, start, pr_body=body)
        push_branch(worktree, branch, remote=settings.git.remote, git_cfg=settings.git)
    existing = forge.find_pr(branch, base)
    if existing is not None and existing.state == "open":
        return existing
    # A closed PR is a decision already taken (`opus retry` after it): open a new one.
    return forge.open_pr(branch=branch, base=base, title=pr_title(job.fr_id, job.title), body=body)


def has_remote(repo: Path, remote: str) -> bool:
    """True when `repo` has a remote called `remote`."""
    return remote in git("remote", cwd=repo).split()


def unpushed_location(repo: Path, branch: str, base: str, remote: str) -> str:
    """The PR body's line for a branch that stays in the repo (no remote to push to)."""
    return (
        f"Branch `{branch}` in the repository `{repo}` (not pushed: the repo has no remote "
        f"`{remote}`). Review it there, e.g. `git -C {repo} log -p {base}..{branch}`."
    )


def fork_point(worktree: Path, base: str, *, remote: str) -> str:
    """Where the branch left `base`: the merge base of HEAD with `base` or with its
    remote tracking branch, whichever is later. A branch that merged the moved remote
    base (`opus.delivery.base_merge`) thus shows only its own changes, not the base's."""
    found = [out for ref in (base, f"refs/remotes/{remote}/{base}")
             if (out := git("merge-base", ref, "HEAD", cwd=worktree, check=False))]  # fmt: skip
    if not found:
        raise GitError(f"cannot find where the branch in {worktree} left {base!r}; "
                       "check the FR's `base:` and that the branch exists")
    latest = found[0]
    for other in found[1:]:
        if is_ancestor(worktree, latest, other):
            latest = other
    return latest


def changed_paths(worktree: Path, start: str) -> list[str]:
    """Every path `start..HEAD` adds, modifies or deletes (both sides of a rename)."""
    out = git("diff", "--name-only", "--no-renames", "-z", start, "HEAD", cwd=worktree)
    return [path for path in out.split("\0") if path]


def _allowed(job: Job) -> tuple[str, ...]:
    raw = job.spec.get("allowed_paths") or ()
    return (raw,) if isinstance(raw, str) else tuple(str(item) for item in raw)


def _default_base(repo: Path) -> str:
    branch = current_branch(repo)
    if branch is None:
        raise DeliveryBlocked(f"the FR names no `base:` and {repo} has a detached HEAD; "
                              "set `base:` in the FR note")
    return branch


def _plan(report: DeliveryReport) -> str:
    steps = "\n".join(f"{n}. {step}" for n, step in enumerate(report.plan_steps, start=1))
    return "\n\n".join(p for p in (report.plan_summary.strip(), steps) if p) or "no plan recorded"


def _clip(text: str) -> str:
    if len(text) <= SUMMARY_CHARS:
        return text
    return text[:SUMMARY_CHARS].rstrip() + "\n\n… (see the FR note for the rest)"
