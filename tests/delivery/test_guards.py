"""The push guards against real repos: protected branches, foreign commits on the remote
branch, allowed_paths; and push_branch's fast-forward / lease behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.config import GitConfig
from opus.delivery.deliver import changed_paths, push_branch
from opus.delivery.guards import (
    check_branch,
    check_paths,
    check_remote_history,
    path_matches,
)
from opus.errors import ConfigError, DeliveryBlocked
from tests.conftest import make_repo, run_git
from tests.delivery.conftest import BRANCH, human_commit, opus_commit

GIT = GitConfig()


@pytest.mark.parametrize("branch", ["main", "master", "refs/heads/main", "feature/x", "opus/"])
def test_refuses_protected_and_foreign_branch_names(branch: str) -> None:
    with pytest.raises(DeliveryBlocked, match="refusing to push"):
        check_branch(branch, GIT)


def test_custom_protected_list_is_honoured() -> None:
    cfg = GitConfig(protected=["opus/release"], branch_prefix="opus/")
    check_branch("opus/fr-1-x", cfg)
    with pytest.raises(DeliveryBlocked, match=r"git\.protected"):
        check_branch("opus/release", cfg)


def test_push_of_protected_branch_never_reaches_the_remote(work: Path, bare_remote: Path) -> None:
    before = run_git(bare_remote, "rev-parse", "main")
    with pytest.raises(DeliveryBlocked):
        push_branch(work, "main", remote="origin", git_cfg=GIT)
    assert run_git(bare_remote, "rev-parse", "main") == before


def test_first_push_and_fast_forward(work: Path, bare_remote: Path) -> None:
    sha = push_branch(work, BRANCH, remote="origin", git_cfg=GIT)
    assert run_git(bare_remote, "rev-parse", BRANCH) == sha
    newer = opus_commit(work, {"src/greet.py": "def greet() -> str:\n    return 'hello'\n"})
    assert check_remote_history(work, BRANCH, remote="origin") is None
    assert push_branch(work, BRANCH, remote="origin", git_cfg=GIT) == newer
    assert run_git(bare_remote, "rev-parse", BRANCH) == newer


def _diverge(work: Path, tmp_path: Path, bare_remote: Path, *, foreign: bool) -> str:
    """Push the branch, add a commit on the remote from another clone, and rewrite ours."""
    push_branch(work, BRANCH, remote="origin", git_cfg=GIT)
    other = tmp_path / "other"
    run_git(tmp_path, "clone", "-q", "-b", BRANCH, str(bare_remote), str(other))
    if foreign:
        theirs = human_commit(other, {"src/extra.py": "x = 1\n"}, msg="reviewer tweak")
    else:
        theirs = opus_commit(other, {"src/extra.py": "x = 1\n"}, msg="wip from a dead worker")
    run_git(other, "push", "-q", "origin", BRANCH)
    run_git(work, "reset", "-q", "--hard", "HEAD~1")
    opus_commit(work, {"src/greet.py": "def greet() -> str:\n    return 'redo'\n"})
    return theirs


def test_foreign_commit_on_remote_branch_blocks(
    work: Path, tmp_path: Path, bare_remote: Path
) -> None:
    theirs = _diverge(work, tmp_path, bare_remote, foreign=True)
    with pytest.raises(DeliveryBlocked) as info:
        push_branch(work, BRANCH, remote="origin", git_cfg=GIT)
    message = str(info.value)
    assert theirs[:12] in message and "reviewer tweak" in message
    assert run_git(bare_remote, "rev-parse", BRANCH) == theirs  # nothing overwritten


def test_opus_only_divergence_is_replaced_with_a_lease(
    work: Path, tmp_path: Path, bare_remote: Path
) -> None:
    theirs = _diverge(work, tmp_path, bare_remote, foreign=False)
    assert check_remote_history(work, BRANCH, remote="origin") == theirs
    ours = push_branch(work, BRANCH, remote="origin", git_cfg=GIT)
    assert run_git(bare_remote, "rev-parse", BRANCH) == ours != theirs


def test_missing_remote_is_named(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "lonely")
    run_git(repo, "checkout", "-q", "-b", BRANCH)
    with pytest.raises(ConfigError, match="no remote 'origin'"):
        push_branch(repo, BRANCH, remote="origin", git_cfg=GIT)


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("src/a.py", "src/**", True),
        ("src/deep/er/a.py", "src/**", True),
        ("srcx/a.py", "src/**", False),
        ("README.md", "src/**", False),
        ("tests/test_a.py", "tests/*.py", True),
        ("tests/sub/test_a.py", "tests/*.py", False),
        ("a/b/c.py", "**/*.py", True),
        ("c.py", "**/*.py", True),
        ("c.pyc", "**/*.py", False),
        ("docs/x/y.md", "docs/", True),
        ("src/a1.py", "src/a[0-9].py", True),
        ("src/ab.py", "src/a[!b].py", False),
        ("src/a.py", "./src/*.py", True),
        ("src/a+b.py", "src/a+b.py", True),
        ("src/a.py", "src/?.py", True),
    ],
)
def test_path_patterns(path: str, pattern: str, expected: bool) -> None:
    assert path_matches(path, pattern) is expected


def test_out_of_scope_paths_are_listed(work: Path) -> None:
    opus_commit(
        work, {"setup.cfg": "[x]\n", "src/ok.py": "y = 2\n", ".github/ci.yml": "on: push\n"}
    )
    paths = changed_paths(work, "main")
    check_paths(paths, ())  # no allowed_paths: everything is allowed
    with pytest.raises(DeliveryBlocked) as info:
        check_paths(paths, ("src/**", "tests/**"))
    listed = [line for line in str(info.value).splitlines() if line.startswith("  ")]
    assert listed == ["  .github/ci.yml", "  setup.cfg"]


def test_deleting_or_renaming_outside_scope_counts(work: Path) -> None:
    run_git(work, "mv", "README.md", "src/README.md")
    run_git(work, "commit", "-q", "-m", "move", "--trailer", "Opus-Job: 7")
    with pytest.raises(DeliveryBlocked, match=r"README\.md"):
        check_paths(changed_paths(work, "main"), ("src/**",))
