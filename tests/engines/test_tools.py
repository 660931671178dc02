"""The client-side tools on real files: confinement, commands, read-only mode, submits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opus.domain import Role
from opus.engines.editor import Editor
from opus.engines.loop_guard import REPEAT_LIMIT, LoopGuard
from opus.engines.tools import Toolbox
from opus.seams import Sandbox


@pytest.fixture
def editor(repo: Path) -> Editor:
    return Editor(repo, read_only=False)


def test_refuses_paths_outside_the_worktree(editor: Editor, repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (repo / "link").symlink_to(outside)
    (repo / "dirlink").symlink_to(tmp_path)
    for path in ["../outside.txt", str(outside), "link", "dirlink/outside.txt", "src/../../x"]:
        for command in ("view", "create"):
            result = editor({"command": command, "path": path, "file_text": "pwned"})
            assert result.is_error, (command, path)
            assert "outside the worktree" in result.content
    assert outside.read_text() == "secret\n"


def test_refuses_git_dir(editor: Editor, repo: Path) -> None:
    result = editor({"command": "create", "path": ".git/hooks/pre-commit", "file_text": "x"})
    assert result.is_error and ".git" in result.content
    assert not (repo / ".git/hooks/pre-commit").exists()
    assert editor({"command": "view", "path": str(repo / ".git" / "config")}).is_error


def test_read_only_mode_views_but_refuses_edits(repo: Path) -> None:
    editor = Editor(repo, read_only=True)
    assert "return a + b" in editor({"command": "view", "path": "src/calc.py"}).content
    for command in ("create", "str_replace", "insert"):
        result = editor({"command": command, "path": "new.py", "file_text": "x", "old_str": "a"})
        assert result.is_error and "read-only" in result.content
    assert not (repo / "new.py").exists()


def test_view_numbers_lines_and_honours_range(editor: Editor) -> None:
    whole = editor({"command": "view", "path": "src/calc.py"}).content
    assert "     1\tdef add(a, b):" in whole
    part = editor({"command": "view", "path": "src/calc.py", "view_range": [2, -1]}).content
    assert "     2\t    return a + b" in part and "def add" not in part
    assert editor({"command": "view", "path": "src/calc.py", "view_range": [5, 9]}).is_error


def test_view_directory_lists_two_levels_without_dotfiles(editor: Editor, repo: Path) -> None:
    (repo / "src/pkg/deep").mkdir(parents=True)
    (repo / "src/pkg/deep/hidden_by_depth.py").write_text("")
    (repo / ".env").write_text("KEY=1\n")
    listing = editor({"command": "view", "path": "."}).content
    assert "src/calc.py" in listing and "tests/test_calc.py" in listing
    assert "src/pkg/" in listing
    assert "hidden_by_depth" not in listing and ".env" not in listing and ".git" not in listing


def test_str_replace_needs_exactly_one_match(editor: Editor, repo: Path) -> None:
    target = repo / "dup.py"
    target.write_text("x = 1\nx = 1\n")
    none = editor({"command": "str_replace", "path": "dup.py", "old_str": "y = 2", "new_str": ""})
    assert none.is_error and "no match" in none.content
    many = editor({"command": "str_replace", "path": "dup.py", "old_str": "x = 1", "new_str": "z"})
    assert many.is_error and "2 times" in many.content and "lines 1, 2" in many.content
    assert target.read_text() == "x = 1\nx = 1\n"
    one = editor(
        {"command": "str_replace", "path": "dup.py", "old_str": "x = 1\nx", "new_str": "y"}
    )
    assert not one.is_error
    assert target.read_text() == "y = 1\n"


def test_insert_and_create(editor: Editor, repo: Path) -> None:
    created = editor({"command": "create", "path": "pkg/new.py", "file_text": "a\nc\n"})
    assert not created.is_error
    assert not editor(
        {"command": "insert", "path": "pkg/new.py", "insert_line": 1, "insert_text": "b\n"}
    ).is_error
    assert (repo / "pkg/new.py").read_text() == "a\nb\nc\n"
    bad = editor({"command": "insert", "path": "pkg/new.py", "insert_line": 99, "insert_text": "x"})
    assert bad.is_error and "insert_line" in bad.content


def test_binary_and_missing_files_are_error_results(editor: Editor, repo: Path) -> None:
    (repo / "blob.bin").write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in editor({"command": "view", "path": "blob.bin"}).content
    assert "does not exist" in editor({"command": "view", "path": "nope.py"}).content
    assert editor({"command": "undo_edit", "path": "src/calc.py"}).is_error
    assert editor({"command": "view"}).is_error


def test_submit_validation(repo: Path, sandbox: Sandbox) -> None:
    planner = Toolbox(Role.PLANNER, repo, sandbox, command_timeout_s=10)
    bad = planner.execute("submit_plan", {"summary": "x", "steps": []})
    assert bad.submission is None and bad.result.is_error
    assert "steps" in bad.result.content and "again" in bad.result.content
    good = planner.execute(
        "submit_plan", {"summary": "x", "steps": [{"title": "t", "postcondition": "p"}]}
    )
    assert good.submission == {"summary": "x", "steps": [{"title": "t", "postcondition": "p"}]}
    assert planner.execute("submit_review", {}).result.is_error, "not the planner's tool"
    assert planner.execute("bash", ["not", "a", "dict"]).result.is_error
    coder = Toolbox(Role.CODER, repo, sandbox, command_timeout_s=10)
    assert [t["name"] for t in coder.definitions()] == ["str_replace_based_edit_tool", "bash"]


def test_loop_guard() -> None:
    guard = LoopGuard()
    for _ in range(REPEAT_LIMIT - 1):
        assert guard.before("bash", {"command": "ls"}) is None
    assert guard.before("bash", {"command": "pwd"}) is None, "a different call resets the streak"
    assert guard.before("bash", {"command": "pwd"}) is None
    assert guard.after("bash", {"command": "x"}, failed=False) is None
    assert guard.after("bash", {"command": "x"}, failed=True) is None
    assert guard.after("bash", {"command": "x"}, failed=True) is None
    reason = guard.after("bash", {"command": "x"}, failed=True)
    assert reason is not None and "failing" in reason


def test_symlinked_worktree_root(tmp_path: Path, repo: Path) -> None:
    alias = tmp_path / "alias"
    os.symlink(repo, alias)
    editor = Editor(alias, read_only=True)
    assert not editor({"command": "view", "path": str(alias / "src/calc.py")}).is_error
