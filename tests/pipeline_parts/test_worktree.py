"""The job worktree on real git repos: create, commit, rebuild, discard, remove."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opus.errors import GitError
from opus.pipeline.worktree import Worktree, branch_name, fresh_branch, slugify, wip_ref
from tests.conftest import make_repo, run_git

AUTHOR = ("opus", "opus@example.invalid")
BRANCH = "opus/fr-1-demo"


def ensure(repo: Path, state: Path, job_id: int = 1, base: str | None = None) -> Worktree:
    return Worktree.ensure(repo, state, job_id, BRANCH, base, remote="origin")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("fr_id", "title", "expected"),
    [
        ("FR-061", "Add rate limiting", "opus/fr-061-add-rate-limiting"),
        ("FR-7", "  Fix: crash on `None` (again!) ", "opus/fr-7-fix-crash-on-none-again"),
        ("FR-8", "Café déjà vu — naïve", "opus/fr-8-cafe-deja-vu-naive"),
        ("FR-9", "日本語", "opus/fr-9"),
        (
            "FR-10",
            "A very long title that keeps going well past the forty character limit",
            "opus/fr-10-a-very-long-title-that-keeps-going-well",
        ),
    ],
)
def test_branch_name(fr_id: str, title: str, expected: str) -> None:
    assert branch_name("opus/", fr_id, title) == expected


@given(st.text(max_size=200))
def test_slug_is_short_lowercase_ascii_with_inner_hyphens(title: str) -> None:
    slug = slugify(title, 40)
    assert len(slug) <= 40
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in slug)
    assert not slug.startswith("-")
    assert not slug.endswith("-")
    assert "--" not in slug


def test_branch_names_are_valid_git_refs() -> None:
    for title in ("..lock", "a..b", "@{x}", "tab\there", "end.", "x.lock"):
        name = branch_name("opus/", "FR-1", title)
        subprocess.run(
            ["git", "check-ref-format", "--branch", name], check=True, capture_output=True
        )


# --------------------------------------------------------------------------- ensure


def test_ensure_creates_a_worktree_on_a_new_branch_from_head(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    assert wt.path == (state / "worktrees" / "job-1").resolve()
    assert wt.branch == BRANCH
    assert run_git(wt.path, "symbolic-ref", "--short", "HEAD") == BRANCH
    assert wt.head() == run_git(git_repo, "rev-parse", "main")
    assert (wt.path / "README.md").read_text() == "# demo\n"


def test_ensure_branches_from_the_given_base(git_repo: Path, state: Path) -> None:
    run_git(git_repo, "checkout", "-q", "-b", "develop")
    (git_repo / "dev.txt").write_text("dev\n")
    run_git(git_repo, "add", "dev.txt")
    run_git(git_repo, "commit", "-q", "-m", "dev")
    run_git(git_repo, "checkout", "-q", "main")
    wt = ensure(git_repo, state, base="develop")
    assert (wt.path / "dev.txt").exists()


def test_missing_base_is_an_error_naming_it(git_repo: Path, state: Path) -> None:
    with pytest.raises(GitError, match="`nope` does not exist"):
        ensure(git_repo, state, base="nope")


def test_ensure_reuses_a_live_worktree(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "work.txt").write_text("in progress\n")
    again = ensure(git_repo, state)
    assert again == wt
    assert (again.path / "work.txt").read_text() == "in progress\n"


def test_vanished_worktree_is_rebuilt_from_the_branch(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "feature.py").write_text("x = 1\n")
    sha = wt.commit("feature", job_id=1, author=AUTHOR)
    shutil.rmtree(wt.path)
    rebuilt = ensure(git_repo, state)
    assert rebuilt.head() == sha
    assert (rebuilt.path / "feature.py").read_text() == "x = 1\n"


def test_worktree_is_rebuilt_from_the_wip_ref_on_the_remote(
    git_repo: Path, bare_remote: Path, state: Path
) -> None:
    wt = ensure(git_repo, state, job_id=5)
    (wt.path / "feature.py").write_text("x = 1\n")
    sha = wt.commit("feature", job_id=5, author=AUTHOR)
    assert sha is not None
    wt.push_wip("origin", 5)
    assert run_git(bare_remote, "rev-parse", wip_ref(5)) == sha
    wt.remove()
    run_git(git_repo, "branch", "-D", BRANCH)
    run_git(git_repo, "update-ref", "-d", wip_ref(5))
    rebuilt = ensure(git_repo, state, job_id=5)
    assert rebuilt.head() == sha
    assert run_git(rebuilt.path, "symbolic-ref", "--short", "HEAD") == BRANCH
    assert (rebuilt.path / "feature.py").exists()


def test_without_branch_or_wip_ref_it_starts_from_base(
    git_repo: Path, bare_remote: Path, state: Path
) -> None:
    wt = ensure(git_repo, state, job_id=6)
    assert wt.head() == run_git(git_repo, "rev-parse", "main")


# --------------------------------------------------------------------------- commits


def test_commit_has_opus_author_and_job_trailer(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state, job_id=42)
    (wt.path / "src").mkdir()
    (wt.path / "src" / "new.py").write_text("print('new')\n")
    (wt.path / "README.md").write_text("# changed\n")
    sha = wt.commit("Add new module\n\nBecause.", job_id=42, author=AUTHOR)
    assert sha == wt.head()
    fields = run_git(
        wt.path, "log", "-1", "--format=%an|%ae|%cn|%ce|%s|%(trailers:key=Opus-Job,valueonly)"
    )
    assert fields == "opus|opus@example.invalid|opus|opus@example.invalid|Add new module|42"
    assert sorted(wt.changed_paths("main")) == ["README.md", "src/new.py"]
    assert run_git(wt.path, "status", "--porcelain") == ""


def test_commit_respects_gitignore(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "r", {".gitignore": "*.log\n__pycache__/\n"})
    wt = ensure(repo, state)
    (wt.path / "debug.log").write_text("noise\n")
    (wt.path / "kept.txt").write_text("kept\n")
    wt.commit("work", job_id=1, author=AUTHOR)
    assert wt.changed_paths("main") == ["kept.txt"]
    assert (wt.path / "debug.log").exists()


def test_nothing_to_commit_gives_none(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    before = wt.head()
    assert wt.commit("empty", job_id=1, author=AUTHOR) is None
    assert wt.head() == before


def test_hooks_of_the_target_repo_never_run(git_repo: Path, state: Path) -> None:
    marker = git_repo.parent / "hook-ran"
    for hook in ("post-checkout", "pre-commit", "commit-msg", "pre-push"):
        path = git_repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\nexit 1\n")
        path.chmod(0o755)
    wt = ensure(git_repo, state)
    (wt.path / "a.txt").write_text("a\n")
    assert wt.commit("a", job_id=1, author=AUTHOR) is not None
    assert not marker.exists()


def test_discard_uncommitted_returns_to_the_checkpoint(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "kept.py").write_text("kept\n")
    sha = wt.commit("checkpoint", job_id=1, author=AUTHOR)
    (wt.path / "kept.py").write_text("half-done edit\n")
    (wt.path / "stray").mkdir()
    (wt.path / "stray" / "new.py").write_text("stray\n")
    wt.discard_uncommitted()
    assert wt.head() == sha
    assert (wt.path / "kept.py").read_text() == "kept\n"
    assert not (wt.path / "stray").exists()


def test_diff_shows_committed_changes_since_base(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "README.md").write_text("# demo\nmore\n")
    wt.commit("more", job_id=1, author=AUTHOR)
    (wt.path / "uncommitted.txt").write_text("not in the diff\n")
    diff = wt.diff("main")
    assert "+more" in diff
    assert "uncommitted" not in diff
    assert wt.changed_paths("main") == ["README.md"]


def test_changed_paths_ignore_base_moving_on(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "mine.txt").write_text("mine\n")
    wt.commit("mine", job_id=1, author=AUTHOR)
    (git_repo / "theirs.txt").write_text("theirs\n")
    run_git(git_repo, "add", "theirs.txt")
    run_git(git_repo, "commit", "-q", "-m", "theirs")
    assert wt.changed_paths("main") == ["mine.txt"]


def test_remove_deletes_the_worktree_and_keeps_the_branch(git_repo: Path, state: Path) -> None:
    wt = ensure(git_repo, state)
    (wt.path / "x.txt").write_text("x\n")
    sha = wt.commit("x", job_id=1, author=AUTHOR)
    (wt.path / "dirty.txt").write_text("dirty\n")
    wt.remove()
    assert not wt.path.exists()
    assert str(wt.path) not in run_git(git_repo, "worktree", "list")
    assert run_git(git_repo, "rev-parse", BRANCH) == sha
    wt.remove()  # idempotent


def test_a_leftover_directory_is_replaced(git_repo: Path, state: Path) -> None:
    path = state / "worktrees" / "job-1"
    path.mkdir(parents=True)
    (path / "junk").write_text("half-deleted\n")
    wt = ensure(git_repo, state)
    assert not (wt.path / "junk").exists()
    assert run_git(wt.path, "symbolic-ref", "--short", "HEAD") == BRANCH


# --------------------------------------------------------------------------- fresh attempts


def _old_attempt(repo: Path, state: Path) -> None:
    """An earlier job's branch with one opus commit, its worktree gone."""
    wt = ensure(repo, state, job_id=1, base="main")
    (wt.path / "a.txt").write_text("a\n")
    wt.commit("earlier attempt", job_id=1, author=AUTHOR)
    wt.remove()


def test_a_fresh_attempt_takes_back_opus_own_unused_branch(git_repo: Path, state: Path) -> None:
    _old_attempt(git_repo, state)
    assert fresh_branch(git_repo, BRANCH, base="main", in_use=lambda _b: False) == BRANCH
    wt = ensure(git_repo, state, job_id=2, base="main")
    assert wt.head() == run_git(git_repo, "rev-parse", "main")


def test_a_fresh_attempt_never_takes_a_branch_in_use(git_repo: Path, state: Path) -> None:
    _old_attempt(git_repo, state)
    old = run_git(git_repo, "rev-parse", BRANCH)
    assert fresh_branch(git_repo, BRANCH, base="main", in_use=lambda b: b == BRANCH) == (
        f"{BRANCH}-2"
    )
    # A human's commit on it: not opus's to take back either.
    run_git(git_repo, "checkout", "-q", BRANCH)
    (git_repo / "human.txt").write_text("mine\n")
    run_git(git_repo, "add", "human.txt")
    run_git(git_repo, "commit", "-qm", "a human's fix")
    run_git(git_repo, "checkout", "-q", "main")
    assert fresh_branch(git_repo, BRANCH, base="main", in_use=lambda _b: False) == (
        f"{BRANCH}-2"
    )
    # Checked out in a live worktree: left alone too.
    ensure(git_repo, state, job_id=3, base="main")
    assert run_git(git_repo, "merge-base", "--is-ancestor", old, BRANCH) == ""
    assert fresh_branch(git_repo, BRANCH, base="main", in_use=lambda _b: False) == (
        f"{BRANCH}-2"
    )
