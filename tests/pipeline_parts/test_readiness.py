"""Readiness: whether an FR can start, and what the user must fix when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.errors import NotReady
from opus.pipeline.readiness import ReadyInfo, check_ready
from tests.conftest import make_repo, run_git

PY_REPO = {"pyproject.toml": "[project]\nname = 'api'\n", "api.py": "x = 1\n"}


def test_missing_repo(tmp_path: Path) -> None:
    with pytest.raises(NotReady, match=r"does not exist; set `repo:`"):
        check_ready(tmp_path / "nowhere", None, None)


def test_not_a_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotReady, match="is not a git repository"):
        check_ready(plain, None, None)


def test_a_file_is_not_a_repo(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(NotReady, match="is not a git repository"):
        check_ready(path, None, None)


def test_repo_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    with pytest.raises(NotReady, match="has no commits yet"):
        check_ready(repo, None, "pytest")


def test_missing_base_lists_the_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api", PY_REPO)
    run_git(repo, "branch", "release")
    with pytest.raises(NotReady) as info:
        check_ready(repo, "develop", None)
    assert str(info.value) == (
        f"base branch `develop` does not exist in {repo}; set `base:` to one of: main, release"
    )


def test_detached_head_needs_an_explicit_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api", PY_REPO)
    run_git(repo, "checkout", "-q", "--detach")
    with pytest.raises(NotReady, match=r"detached.*one of: main"):
        check_ready(repo, None, None)
    assert check_ready(repo, "main", None).base_branch == "main"


def test_no_test_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs", {"README.md": "# just docs\n"})
    with pytest.raises(NotReady) as info:
        check_ready(repo, None, None)
    message = str(info.value)
    assert "no test command" in message
    assert "`test_command:`" in message
    assert ".opus.toml" in message


def test_ready_with_defaults(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api", PY_REPO)
    assert check_ready(repo, None, None) == ReadyInfo("main", "python3 -m pytest -q")


def test_the_frs_command_wins(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs", {"README.md": "# docs\n"})
    assert check_ready(repo, "main", "make docs-check").test_command == "make docs-check"


def test_detection_reads_the_base_branch_not_the_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "svc", {"README.md": "# svc\n"})
    run_git(repo, "checkout", "-q", "-b", "develop")
    (repo / "go.mod").write_text("module example.com/svc\n")
    (repo / ".opus.toml").write_text('test_command = "make ci"\n')
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "go")
    run_git(repo, "checkout", "-q", "main")
    (repo / "Cargo.toml").write_text("[package]\n")  # untracked on main: not looked at
    assert check_ready(repo, "develop", None) == ReadyInfo("develop", "make ci")
    with pytest.raises(NotReady, match="no test command"):
        check_ready(repo, "main", None)


def test_python_tests_dir_on_the_base_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "lib", {"tests/test_lib.py": "def test(): pass\n"})
    assert check_ready(repo, None, None).test_command == "python3 -m pytest -q"
