"""The tester: find the repo's test command and run it in the sandbox.

The command comes, in this order, from the FR's `test_command:`, from the repo's own
`.opus.toml` at its root:

    test_command = "make check"
    setup = "python3 -m venv .opus-venv && .opus-venv/bin/pip install -e .[test]"

or from detection by marker files (see `detect`). Detection reads a `RepoView`, so it
works on a checked-out directory (`DirView`) and on a commit's tree without a checkout
(`TreeView`). The pipeline only ever asks the *base* commit's tree (the trusted gate):
the agent can rewrite every file of its worktree, so nothing in it decides how opus
judges the agent's work.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opus.errors import NotReady, UnsafePath
from opus.git import git
from opus.pipeline.safe_read import is_plain_dir, read_text
from opus.pipeline.sandbox_hints import sandbox_hint, strip_ansi
from opus.seams import Sandbox

REPO_CONFIG = ".opus.toml"
PYTHON_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini")
MARKERS_LOOKED_FOR = (
    "pyproject.toml, setup.cfg, pytest.ini, tests/*.py, package.json with a test script, "
    "Cargo.toml, go.mod, a Makefile with a `test:` target"
)
# `npm init` writes this placeholder; it is not a test suite.
NPM_PLACEHOLDER = "no test specified"
MAKE_TEST_TARGET = re.compile(r"^test\s*:", re.MULTILINE)


class RepoView(Protocol):
    """The few questions detection asks about a repo's files."""

    def top_level(self) -> set[str]:
        """Names of the entries at the repo root."""
        ...

    def read(self, name: str) -> str | None:
        """Text of a root file, or None when it is missing or unreadable."""
        ...

    def has_python_tests(self) -> bool:
        """True when a `tests/` directory holds a `.py` file."""
        ...


@dataclass(frozen=True)
class DirView:
    """A `RepoView` over a checked-out directory that an agent may have written.

    Files are read without following symlinks and only when regular (see `safe_read`);
    a refusal is kept in `problems` and the file counts as absent.
    """

    root: Path
    problems: list[str] = field(default_factory=list, compare=False)

    def top_level(self) -> set[str]:
        return {entry.name for entry in self.root.iterdir()} if is_plain_dir(self.root) else set()

    def read(self, name: str) -> str | None:
        try:
            return read_text(self.root, name)
        except UnsafePath as exc:
            self.problems.append(str(exc))
            return None

    def has_python_tests(self) -> bool:
        tests = self.root / "tests"
        if not is_plain_dir(tests):
            return False
        # os.walk does not descend into symlinked directories.
        return any(
            name.endswith(".py") for _dir, _subdirs, files in os.walk(tests) for name in files
        )


REGULAR_BLOB_MODES = ("100644", "100755")


@dataclass(frozen=True)
class TreeView:
    """A `RepoView` over a commit's tree (no checkout needed).

    Only regular blobs are read: a symlink committed as `.opus.toml` is a problem, not
    a pointer to follow.
    """

    repo: Path
    rev: str
    problems: list[str] = field(default_factory=list, compare=False)

    def top_level(self) -> set[str]:
        out = git("ls-tree", "--name-only", self.rev, cwd=self.repo, check=False)
        return set(out.splitlines())

    def read(self, name: str) -> str | None:
        entry = git("ls-tree", self.rev, "--", name, cwd=self.repo, check=False)
        meta, _, path = entry.partition("\t")
        if not entry or path != name:
            return None
        mode, kind, sha = meta.split()
        if kind != "blob" or mode not in REGULAR_BLOB_MODES:
            self.problems.append(f"{name} in {self.rev} is not a regular file (mode {mode})")
            return None
        # An empty file means as little to detection as a missing one.
        return git("cat-file", "blob", sha, cwd=self.repo, check=False) or None

    def has_python_tests(self) -> bool:
        out = git(
            "ls-tree", "-r", "--name-only", self.rev, "--", "tests", cwd=self.repo, check=False
        )
        return any(line.endswith(".py") for line in out.splitlines())


@dataclass(frozen=True)
class TestOutcome:
    """One run of the test command."""

    __test__ = False  # not a pytest test class

    command: str
    passed: bool
    exit_code: int
    duration_s: float
    output_tail: str
    timed_out: bool = False
    hint: str = ""
    """Set when a failure looks like a sandbox limit; names the setting that allows it."""

    def report(self) -> str:
        """What a coder needs to fix a failure: the command, how it ended, the output tail."""
        ending = "timed out" if self.timed_out else f"exited {self.exit_code}"
        verdict = "passed" if self.passed else "FAILED"
        hint = f"{self.hint}\n" if self.hint else ""
        return (
            f"`{self.command}` {verdict} ({ending}, {self.duration_s:.1f}s)\n"
            f"{hint}{self.output_tail}"
        )


def detect(view: RepoView) -> str | None:
    """The test command a repo's marker files suggest, or None."""
    names = view.top_level()
    if any(marker in names for marker in PYTHON_MARKERS) or view.has_python_tests():
        return "python3 -m pytest -q"
    if "package.json" in names and _npm_has_tests(view.read("package.json")):
        return "npm test"
    if "Cargo.toml" in names:
        return "cargo test"
    if "go.mod" in names:
        return "go test ./..."
    makefile = next((n for n in ("GNUmakefile", "Makefile", "makefile") if n in names), None)
    if makefile and MAKE_TEST_TARGET.search(view.read(makefile) or ""):
        return "make test"
    return None


def detect_test_command(worktree: Path) -> str | None:
    """The test command detected from the marker files in `worktree`, or None."""
    return detect(DirView(worktree))


def configured_command(view: RepoView) -> str | None:
    """`test_command` from the repo's `.opus.toml`, or None; raises `NotReady` if invalid."""
    return repo_setting(view, "test_command")


def repo_setting(view: RepoView, key: str) -> str | None:
    """A string setting (`test_command`, `setup`) from the repo's `.opus.toml`, or None.

    Raises `NotReady` when the file is not TOML or the value is not a non-empty string.
    """
    text = view.read(REPO_CONFIG)
    if text is None:
        return None
    try:
        value = tomllib.loads(text).get(key)
    except tomllib.TOMLDecodeError as exc:
        raise NotReady(
            f"{REPO_CONFIG} in the repo is not valid TOML ({exc}); fix it or set "
            "`test_command:` in the note"
        ) from exc
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise NotReady(
            f"`{key}` in the repo's {REPO_CONFIG} must be a non-empty string, "
            f'e.g. {key} = "make check"; got {value!r}'
        )
    return value.strip()


def command_for(fr_command: str | None, view: RepoView) -> str | None:
    """The FR's command, else the repo config's, else the detected one."""
    if fr_command and fr_command.strip():
        return fr_command.strip()
    return configured_command(view) or detect(view)


def resolve_test_command(fr_command: str | None, worktree: Path) -> str | None:
    """The test command for a worktree: FR's, else `.opus.toml`'s, else detected."""
    return command_for(fr_command, DirView(worktree))


def run_tests(
    sandbox: Sandbox,
    worktree: Path,
    command: str,
    *,
    timeout_s: float,
    tail_bytes: int,
    env_prefix: str = "",
) -> TestOutcome:
    """Run `command` in the sandbox (worktree writable: tests write caches).

    `env_prefix` is shell that puts the worktree's own environment first (see `setup`).
    The output is kept without terminal escapes; a failure that looks like a sandbox
    limit carries a hint naming the setting that allows it.
    """
    result = sandbox.run(
        env_prefix + command, worktree=worktree, timeout_s=timeout_s, writable=True
    )
    output = strip_ansi(result.output)
    passed = result.exit_code == 0 and not result.timed_out
    return TestOutcome(
        command=command,
        passed=passed,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output_tail=_tail(output, tail_bytes),
        timed_out=result.timed_out,
        hint="" if passed else sandbox_hint(output),
    )


def _tail(text: str, tail_bytes: int) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= tail_bytes:
        return text
    return data[-tail_bytes:].decode("utf-8", errors="ignore")


def _npm_has_tests(package_json: str | None) -> bool:
    try:
        scripts = json.loads(package_json or "").get("scripts") or {}
    except (ValueError, AttributeError):
        return False
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return isinstance(test, str) and bool(test.strip()) and NPM_PLACEHOLDER not in test
