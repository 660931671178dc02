"""A PR branch against its moved base, with real git: behind or not, `git merge-tree`
conflicts, the merge in a worktree, the coder's conflict report, markers, the fork
point after a merge, and the secret scan of a conflict resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.delivery.base_merge import (
    base_state,
    conflict_report,
    markers_left,
    merge_conflicts,
    merging,
    start_merge,
)
from opus.delivery.deliver import changed_paths, fork_point
from opus.delivery.guards import check_secrets
from opus.errors import DeliveryBlocked
from tests.conftest import run_git
from tests.delivery.conftest import BRANCH, human_commit, opus_commit

GREET = "src/greet.py"
OPUS = ("opus", "opus@localhost")


def _base_moves(repo: Path, remote: Path, files: dict[str, str], msg: str) -> str:
    """Someone pushes a commit to `main` on the remote (the local `main` stays put)."""
    clone = repo.parent / "someone"
    if not clone.exists():
        run_git(repo.parent, "clone", "-q", str(remote), str(clone))
    run_git(clone, "checkout", "-q", "main")
    run_git(clone, "pull", "-q", "origin", "main")
    sha = human_commit(clone, files, msg)
    run_git(clone, "push", "-q", "origin", "main")
    return sha


def test_a_branch_up_to_date_is_not_behind(work: Path, bare_remote: Path) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    state = base_state(work, BRANCH, "main", remote="origin")
    assert state is not None
    assert (state.behind, state.conflicts) == (False, ())
    assert state.base_ref == "refs/remotes/origin/main"
    assert state.head_sha == run_git(work, "rev-parse", "HEAD")


def test_a_moved_base_that_merges_cleanly_is_behind_without_conflicts(
    work: Path, bare_remote: Path
) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    moved = _base_moves(work, bare_remote, {"docs/other.md": "other\n"}, "Add docs")
    state = base_state(work, BRANCH, "main", remote="origin")
    assert state is not None
    assert (state.behind, state.conflicts, state.base_sha) == (True, (), moved)
    assert state.label == "origin/main"
    assert f"base {moved}" in state.trigger


def test_a_conflicting_base_names_the_conflicted_paths(work: Path, bare_remote: Path) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    _base_moves(work, bare_remote, {GREET: "def greet() -> str:\n    return 'hello'\n",
                                    "README.md": "changed\n"}, "Say hello")  # fmt: skip
    state = base_state(work, BRANCH, "main", remote="origin")
    assert state is not None
    assert state.behind and state.conflicts == (GREET,)


def test_the_head_is_the_remote_branch_a_human_pushed_to(work: Path, bare_remote: Path) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    clone = work.parent / "human"
    run_git(work.parent, "clone", "-q", "-b", BRANCH, str(bare_remote), str(clone))
    pushed = human_commit(clone, {"notes.txt": "mine\n"}, "A human's commit")
    run_git(clone, "push", "-q", "origin", BRANCH)
    state = base_state(work, BRANCH, "main", remote="origin")
    assert state is not None and state.head_sha == pushed


def test_without_a_remote_the_local_base_is_compared(git_repo: Path) -> None:
    run_git(git_repo, "checkout", "-q", "-b", BRANCH)
    opus_commit(git_repo, {GREET: "a\n"})
    run_git(git_repo, "checkout", "-q", "main")
    human_commit(git_repo, {GREET: "b\n"}, "Conflicting")
    state = base_state(git_repo, BRANCH, "main", remote="origin")
    assert state is not None
    assert (state.base_ref, state.conflicts) == ("refs/heads/main", (GREET,))
    assert base_state(git_repo, "opus/no-such-branch", "main", remote="origin") is None


def test_merge_in_a_worktree_leaves_markers_and_the_coder_gets_both_sides(
    work: Path, bare_remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    moved = _base_moves(work, bare_remote, {GREET: "def greet() -> str:\n    return 'hello'\n"},
                        "Say hello, not hi\n\nThe product team wants a warmer greeting.")
    state = base_state(work, BRANCH, "main", remote="origin")
    assert state is not None

    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key)  # no identity anywhere but what opus passes
    monkeypatch.setenv("HOME", str(work.parent / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    conflicts = start_merge(work, moved, label=state.label, author=OPUS)

    assert conflicts == (GREET,) and merging(work)
    text = (work / GREET).read_text()
    assert "<<<<<<< HEAD" in text and f">>>>>>> {moved}" in text
    assert markers_left(work, list(conflicts)) == [GREET]
    report = conflict_report(work, fr="FR-7 Add greeting", label=state.label, sha=moved,
                             conflicts=conflicts)  # fmt: skip
    assert GREET in report and "FR-7 Add greeting" in report
    assert "Say hello, not hi" in report and "warmer greeting" in report
    (work / GREET).write_text("def greet() -> str:\n    return 'hello'\n")
    assert markers_left(work, list(conflicts)) == []


def test_merge_tree_conflicts_match_a_real_merge(git_repo: Path) -> None:
    run_git(git_repo, "checkout", "-q", "-b", BRANCH)
    ours = opus_commit(git_repo, {"a.txt": "ours\n", "b.txt": "same\n"})
    run_git(git_repo, "checkout", "-q", "main")
    theirs = human_commit(git_repo, {"a.txt": "theirs\n", "c.txt": "new\n"})
    assert merge_conflicts(git_repo, ours, theirs) == ("a.txt",)
    assert merge_conflicts(git_repo, ours, ours) == ()


def test_after_merging_the_moved_base_the_diff_and_guards_see_only_the_branch(
    work: Path, bare_remote: Path
) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    moved = _base_moves(work, bare_remote, {GREET: "def greet() -> str:\n    return 'hello'\n",
                                            "docs/base.md": "the base's own file\n"},
                        "Say hello")  # fmt: skip
    base_state(work, BRANCH, "main", remote="origin")
    start_merge(work, moved, label="origin/main", author=OPUS)
    (work / GREET).write_text("def greet() -> str:\n    return 'hello there'\n")
    opus_commit(work, {}, msg="Merge origin/main")
    assert len(run_git(work, "log", "-1", "--format=%P").split()) == 2

    start = fork_point(work, "main", remote="origin")

    assert start == moved  # not the old fork point: local `main` never moved
    assert changed_paths(work, start) == [GREET]


def test_a_secret_written_while_resolving_a_conflict_is_caught(
    work: Path, bare_remote: Path
) -> None:
    run_git(work, "push", "-q", "origin", BRANCH)
    moved = _base_moves(work, bare_remote, {GREET: "def greet() -> str:\n    return 'hello'\n"},
                        "Say hello")  # fmt: skip
    base_state(work, BRANCH, "main", remote="origin")
    start_merge(work, moved, label="origin/main", author=OPUS)
    key = "AKIA" + "ZQ3DUMMYKEY7EXMPL"
    (work / GREET).write_text(f"KEY = '{key}'\ndef greet() -> str:\n    return 'hello'\n")
    opus_commit(work, {}, msg="Merge origin/main")
    with pytest.raises(DeliveryBlocked, match=GREET):
        check_secrets(work, fork_point(work, "main", remote="origin"))
