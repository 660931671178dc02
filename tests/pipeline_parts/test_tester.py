"""Finding and running a repo's tests: detection, repo config, real pytest in real bwrap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.errors import NotReady
from opus.pipeline.tester import (
    detect_test_command,
    resolve_test_command,
    run_tests,
)
from opus.sandbox import bwrap_available, sandbox_for
from opus.seams import Sandbox

PYTEST = "python3 -m pytest -q"
NPM_INIT_DEFAULT = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": "[project]\nname='x'\n"}, PYTEST),
        ({"setup.cfg": "[metadata]\n"}, PYTEST),
        ({"pytest.ini": "[pytest]\n"}, PYTEST),
        ({"tests/unit/test_x.py": "def test(): pass\n"}, PYTEST),
        ({"package.json": '{"scripts": {"test": "jest"}}'}, "npm test"),
        ({"Cargo.toml": "[package]\nname='x'\n"}, "cargo test"),
        ({"go.mod": "module example.com/x\n"}, "go test ./..."),
        ({"Makefile": "build:\n\tcc x.c\n\ntest: build\n\t./run-tests\n"}, "make test"),
        ({"README.md": "# nothing to run\n"}, None),
        ({"tests/data.json": "{}"}, None),
        ({"package.json": '{"scripts": {"build": "tsc"}}'}, None),
        ({"package.json": NPM_INIT_DEFAULT}, None),
        ({"package.json": "not json"}, None),
        ({"Makefile": "all:\n\techo hi\n\ntest-data:\n\ttrue\n"}, None),
    ],
)
def test_detection(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    assert detect_test_command(write(tmp_path, files)) == expected


def test_detection_of_an_empty_or_missing_directory(tmp_path: Path) -> None:
    assert detect_test_command(tmp_path) is None
    assert detect_test_command(tmp_path / "missing") is None


def test_resolution_order_fr_then_repo_config_then_detected(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "", "Makefile": "test:\n\ttrue\n"})
    assert resolve_test_command(None, tmp_path) == PYTEST
    write(tmp_path, {".opus.toml": 'test_command = "make check"\n'})
    assert resolve_test_command(None, tmp_path) == "make check"
    assert resolve_test_command("  tox -e py311 ", tmp_path) == "tox -e py311"
    assert resolve_test_command("", tmp_path) == "make check"


def test_repo_config_without_the_key_falls_back_to_detection(tmp_path: Path) -> None:
    write(tmp_path, {".opus.toml": "# nothing yet\n", "go.mod": "module x\n"})
    assert resolve_test_command(None, tmp_path) == "go test ./..."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test_command = [unclosed", "not valid TOML"),
        ("test_command = 3\n", "must be a non-empty string"),
        ('test_command = "  "\n', "must be a non-empty string"),
    ],
)
def test_bad_repo_config_is_not_ready(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, {".opus.toml": text})
    with pytest.raises(NotReady, match=message):
        resolve_test_command(None, tmp_path)


# --------------------------------------------------------------------------- running

PASSING = {
    "pyproject.toml": "[project]\nname = 'proj'\n",
    "src_lib.py": "def add(a, b):\n    return a + b\n",
    "tests/test_lib.py": (
        "from src_lib import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
}
FAILING_TEST = "from src_lib import add\n\n\ndef test_add_is_wrong():\n    assert add(2, 2) == 5\n"


@pytest.fixture(params=["bwrap", "none"])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    if request.param == "bwrap" and not bwrap_available():
        pytest.skip("bubblewrap is not installed")
    return sandbox_for(SandboxConfig(kind=request.param))


def _project(tmp_path: Path, test_text: str | None = None) -> Path:
    root = write(tmp_path / "proj", PASSING)
    # pytest needs the project root on sys.path to import src_lib.
    write(root, {"conftest.py": ""})
    if test_text is not None:
        write(root, {"tests/test_lib.py": test_text})
    return root


def test_a_passing_pytest_project(tmp_path: Path, sandbox: Sandbox) -> None:
    root = _project(tmp_path)
    command = resolve_test_command(None, root)
    assert command == PYTEST
    outcome = run_tests(sandbox, root, command, timeout_s=60, tail_bytes=2000)
    assert outcome.passed, outcome.output_tail
    assert outcome.exit_code == 0
    assert not outcome.timed_out
    assert "1 passed" in outcome.output_tail
    assert outcome.command == PYTEST


def test_a_failing_pytest_project(tmp_path: Path, sandbox: Sandbox) -> None:
    root = _project(tmp_path, FAILING_TEST)
    outcome = run_tests(sandbox, root, PYTEST, timeout_s=60, tail_bytes=2000)
    assert not outcome.passed
    assert outcome.exit_code == 1
    assert "test_add_is_wrong" in outcome.output_tail
    assert "1 failed" in outcome.output_tail
    assert "FAILED" in outcome.report()


def test_a_hanging_test_command_times_out(tmp_path: Path, sandbox: Sandbox) -> None:
    started = time.monotonic()
    outcome = run_tests(sandbox, tmp_path, "echo start; sleep 60", timeout_s=1, tail_bytes=2000)
    assert time.monotonic() - started < 6
    assert outcome.timed_out
    assert not outcome.passed
    assert "start" in outcome.output_tail
    assert "timed out" in outcome.report()


def test_output_tail_keeps_the_end(tmp_path: Path, sandbox: Sandbox) -> None:
    outcome = run_tests(
        sandbox, tmp_path, "seq 1 5000; echo THE-END; exit 2", timeout_s=20, tail_bytes=100
    )
    assert not outcome.passed
    assert outcome.exit_code == 2
    assert len(outcome.output_tail.encode()) <= 100
    assert outcome.output_tail.endswith("THE-END\n")
