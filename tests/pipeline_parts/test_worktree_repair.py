"""A SIGKILL inside `git worktree add` (or any git command in a worktree) leaves nothing
that stops the next `Worktree.ensure` of the same job, or of another job."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from opus.pipeline.worktree import Worktree
from opus.pipeline.worktree_repair import entry_problem
from tests.conftest import make_repo, run_git

KILLS = 20
BRANCH = "opus/fr-1-crash"


def _repo(root: Path) -> Path:
    # Enough files that a checkout takes a while, so kills land at different steps.
    files = {f"pkg/mod_{n}.py": f"VALUE = {n}\n" * 20 for n in range(400)}
    return make_repo(root / "repo", files)


def _killed_add(repo: Path, path: Path, branch: str, delay_s: float) -> str:
    """Start the `git worktree add` opus would run and SIGKILL it after `delay_s`.

    The whole process group dies, as when systemd kills the daemon's cgroup: git's own
    children (the checkout) die with it.
    """
    proc = subprocess.Popen(
        ["git", "worktree", "add", "--quiet", "-b", branch, str(path), "main"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    time.sleep(delay_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return "finished" if proc.returncode == 0 else "killed"


def _residue(repo: Path) -> list[str]:
    admin = repo / ".git" / "worktrees"
    entries = sorted(admin.iterdir()) if admin.is_dir() else []
    return [f"{e.name}: {entry_problem(e)}" for e in entries if entry_problem(e)]


def test_ensure_proceeds_after_a_kill_at_any_point_of_worktree_add(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    state = tmp_path / "state"
    rng = random.Random(20261129)
    seen: dict[str, int] = {}
    for attempt in range(KILLS):
        job = attempt + 1
        path = state / "worktrees" / f"job-{job}"
        path.parent.mkdir(parents=True, exist_ok=True)
        branch = f"{BRANCH}-{job}"
        ended = _killed_add(repo, path, branch, rng.uniform(0.0, 0.08))
        for line in _residue(repo) or ["none"]:
            kind = line.split(": ", 1)[-1]
            seen[kind] = seen.get(kind, 0) + 1
        seen[ended] = seen.get(ended, 0) + 1
        wt = Worktree.ensure(repo, state, job, branch, "main", remote="origin")
        # The worktree is whole: every tracked file checked out, nothing half-made.
        assert run_git(wt.path, "status", "--porcelain") == ""
        assert (wt.path / "pkg" / "mod_399.py").is_file()
        assert run_git(wt.path, "rev-parse", "--abbrev-ref", "HEAD") == branch
        # And the repository is usable for everyone else.
        run_git(repo, "worktree", "list")
        assert _residue(repo) == []
    print("residue seen before repair:", seen)


def test_a_half_made_entry_of_another_job_does_not_stop_this_one(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    state = tmp_path / "state"
    admin = repo / ".git" / "worktrees" / "job-9"
    admin.mkdir(parents=True)
    (admin / "locked").write_text("initializing")  # git killed before writing the rest
    run_git(repo, "worktree", "list")  # git itself tolerates it here ...
    wt = Worktree.ensure(repo, state, 1, BRANCH, "main", remote="origin")
    assert wt.path.is_dir()
    assert not admin.exists()  # ... and opus removed it


def test_stale_locks_in_the_jobs_own_worktree_are_dropped(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    state = tmp_path / "state"
    wt = Worktree.ensure(repo, state, 1, BRANCH, "main", remote="origin")
    admin = Path(run_git(wt.path, "rev-parse", "--absolute-git-dir"))
    (admin / "index.lock").write_text("")  # a `git add` killed mid-way
    (wt.path / "new.txt").write_text("x\n")
    again = Worktree.ensure(repo, state, 1, BRANCH, "main", remote="origin")
    assert again.commit("after a crash", job_id=1, author=("opus", "opus@localhost"))


def test_a_killed_branch_creation_does_not_block_the_branch(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    lock = repo / ".git" / "refs" / "heads" / "opus" / "fr-1-crash.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    wt = Worktree.ensure(repo, tmp_path / "state", 1, BRANCH, "main", remote="origin")
    assert run_git(wt.path, "rev-parse", "--abbrev-ref", "HEAD") == BRANCH
