"""Setup detection, the worktree's PATH, sandbox hints, ANSI stripping and the baseline
line — over real files, real git trees and the real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.pipeline.baseline import failure_message, summary_line
from opus.pipeline.sandbox_hints import hint_of, sandbox_hint, strip_ansi
from opus.pipeline.tester import TreeView, run_tests
from opus.pipeline.workenv import detect_setup, ensure_setup, env_prefix, exclude_generated
from opus.sandbox import bwrap_available, sandbox_for
from tests.conftest import make_repo, run_git

PYPROJECT_WITH_TEST_EXTRA = """\
[project]
name = "greeting-kit"
version = "0.1.0"
[project.optional-dependencies]
test = ["pytest"]
dev = ["ruff"]
"""

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA}, "pip install --quiet -e '.[test]'"),
        ({"pyproject.toml": "[project]\nname='x'\n[project.optional-dependencies]\ndev=[]\n"},
         "-e '.[dev]'"),
        ({"pyproject.toml": "[project]\nname = 'x'\n"}, "pip install --quiet -e ."),
        ({"pyproject.toml": "[tool.pytest.ini_options]\n"}, None),
        ({"package.json": "{}", "package-lock.json": "{}"}, "npm ci --no-audit --no-fund"),
        ({"package.json": "{}", "yarn.lock": ""}, "yarn install --frozen-lockfile"),
        ({"package.json": "{}"}, None),
        ({"README.md": "hi"}, None),
    ],
)
def test_setup_detection(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    repo = make_repo(tmp_path / "repo", files)
    command = detect_setup(TreeView(repo, "HEAD"))
    if expected is None:
        assert command is None
    else:
        assert command is not None and expected in command
        if "pip" in command:
            assert command.startswith("python3 -m venv --system-site-packages .opus-venv")


def test_generated_dirs_are_ignored_and_never_cleaned(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".opus-venv" / "bin").mkdir(parents=True)
    (repo / "node_modules" / "x").mkdir(parents=True)
    (repo / "node_modules" / "x" / "index.js").write_text("1")
    (repo / ".opus-venv" / "bin" / "python").write_text("")
    exclude_generated(repo)
    exclude_generated(repo)  # once is enough: no duplicate lines
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.opus-venv/") == 1
    assert run_git(repo, "status", "--porcelain") == ""
    run_git(repo, "clean", "-fdq")
    assert (repo / "node_modules" / "x" / "index.js").exists()


def test_env_prefix_puts_the_worktree_first(tmp_path: Path) -> None:
    assert "PATH" not in env_prefix(tmp_path)
    (tmp_path / ".opus-venv" / "bin").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    prefix = env_prefix(tmp_path)
    assert f"PATH={tmp_path}/.opus-venv/bin:{tmp_path}/node_modules/.bin:" in prefix
    assert f"VIRTUAL_ENV={tmp_path}/.opus-venv" in prefix


def test_setup_runs_once_and_again_when_its_inputs_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"package.json": '{"name": "a"}'})
    sandbox = sandbox_for(SandboxConfig(kind="none"))
    command = "echo run >> setup-runs.log"

    def setup() -> bool:
        return ensure_setup(sandbox, repo, command, timeout_s=30, tail_bytes=1000).ran

    exclude_generated(repo)
    assert setup() is True
    assert setup() is False
    (repo / "package.json").write_text('{"name": "b"}')
    run_git(repo, "commit", "-qam", "a dependency changed")
    assert setup() is True
    assert (repo / "setup-runs.log").read_text() == "run\nrun\n"


@pytest.mark.parametrize(
    ("output", "setting"),
    [
        ("socket.gaierror: [Errno -3] Temporary failure in name resolution", "sandbox.network"),
        ("npm ERR! getaddrinfo ENOTFOUND registry.npmjs.org", "sandbox.network"),
        ("OSError: [Errno 101] Network is unreachable", "sandbox.network"),
        ("OSError: [Errno 30] Read-only file system: '/home/u/.cache/x'", "sandbox.kind"),
    ],
)
def test_sandbox_hints_name_the_setting(output: str, setting: str) -> None:
    hint = sandbox_hint(f"collected 3 items\n{output}\n1 failed")
    assert setting in hint
    assert hint_of(f"The tests failed.\n{hint}\nmore") == hint


def test_no_hint_for_an_ordinary_failure() -> None:
    assert sandbox_hint("AssertionError: 2 != 3\n1 failed in 0.1s") == ""


@needs_bwrap
def test_real_sandbox_limits_are_recognised(tmp_path: Path) -> None:
    sandbox = sandbox_for(SandboxConfig(kind="bwrap"))
    dns = run_tests(
        sandbox, tmp_path,
        "python3 -c \"import socket; socket.getaddrinfo('example.com', 443)\"",
        timeout_s=30, tail_bytes=4000,
    )  # fmt: skip
    assert not dns.passed
    assert "sandbox.network" in dns.hint, dns.output_tail
    assert dns.hint in dns.report()
    home = run_tests(sandbox, tmp_path, 'touch "$HOME/opus-probe"', timeout_s=30,
                     tail_bytes=4000)
    assert not home.passed
    assert "sandbox.kind" in home.hint, home.output_tail


def test_ansi_escapes_are_stripped_from_stored_output(tmp_path: Path) -> None:
    sandbox = sandbox_for(SandboxConfig(kind="none"))
    outcome = run_tests(
        sandbox, tmp_path,
        r"printf '\033[1m\033[31mFAILED\033[0m test_x\r\n\033]0;title\007done\n'; exit 1",
        timeout_s=30, tail_bytes=4000,
    )  # fmt: skip
    assert "\x1b" not in outcome.output_tail
    assert outcome.output_tail == "FAILED test_x\ndone\n"
    assert strip_ansi("\x1b[32m5 passed\x1b[0m in 0.1s") == "5 passed in 0.1s"


def test_baseline_lines() -> None:
    from opus.pipeline.tester import TestOutcome

    passed = TestOutcome("pytest -q", True, 0, 41.2, "....\n737 passed, 2 skipped in 41.20s\n")
    assert summary_line(passed) == "baseline: 737 passed, 2 skipped in 41 s"
    node = TestOutcome("npm test", True, 0, 2.34, "# pass 12\n# fail 0\n")
    assert summary_line(node) == "baseline: 12 passed, 0 failed in 2.3 s"
    failed = TestOutcome("make test", False, 2, 1.0, "boom\n" * 100, hint="")
    message = failure_message(failed, "main")
    assert message.startswith("the tests fail on `main` before any change")
    assert message.count("boom") == 40


def test_an_environment_edited_after_setup_is_built_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"package.json": '{"name": "a"}'})
    sandbox = sandbox_for(SandboxConfig(kind="none"))
    command = (
        "mkdir -p .opus-venv/bin && printf '#!/bin/sh\\nexit 1\\n' > .opus-venv/bin/gate "
        "&& chmod +x .opus-venv/bin/gate"
    )
    exclude_generated(repo)
    assert ensure_setup(sandbox, repo, command, timeout_s=30, tail_bytes=1000).ran
    # The agent makes the gate's tool pass, inside the writable worktree.
    (repo / ".opus-venv" / "bin" / "gate").write_text("#!/bin/sh\nexit 0\n")
    (repo / ".opus-venv" / "planted.pth").write_text("/elsewhere\n")
    again = ensure_setup(sandbox, repo, command, timeout_s=30, tail_bytes=1000)
    assert again.ran and again.ok
    assert "exit 1" in (repo / ".opus-venv" / "bin" / "gate").read_text()
    assert not (repo / ".opus-venv" / "planted.pth").exists()
    assert not ensure_setup(sandbox, repo, command, timeout_s=30, tail_bytes=1000).ran


def test_setup_comes_from_the_note_then_the_base_config_then_detection(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from opus.domain import Job, JobState, Priority
    from opus.pipeline.preflight import setup_command
    from opus.registry.records import spec_for
    from opus.vault import scan_vault

    repo = make_repo(tmp_path / "repo", {"package.json": "{}", "package-lock.json": "{}"})
    notes = tmp_path / "vault" / "10_features"
    notes.mkdir(parents=True)
    (notes / "FR-5.md").write_text(
        "---\nid: FR-5\ntitle: T\nstatus: planned\nsetup: make dev-env\n---\nbody\n"
    )
    (fr,) = scan_vault(tmp_path / "vault", default_repo=repo).valid
    now = datetime.now(UTC)

    def job(spec: dict[str, object]) -> Job:
        return Job(1, "FR-5", "T", JobState.RUNNING, Priority.MEDIUM, "h", fr.path, repo,
                   "main", now, now, spec=spec)

    view = TreeView(repo, "main")
    assert setup_command(job(spec_for(fr)), view) == "make dev-env"
    assert setup_command(job({}), view) == "npm ci --no-audit --no-fund"
    (repo / ".opus.toml").write_text('setup = "./bootstrap --offline"\n')
    run_git(repo, "add", ".opus.toml")
    run_git(repo, "commit", "-qm", "repo setup")
    assert setup_command(job({}), TreeView(repo, "main")) == "./bootstrap --offline"
