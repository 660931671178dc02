"""Each command imports what it uses: read from `sys.modules` of a real process after it ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e_cli.helpers import clean_env, run_opus

PROBE = """\
import json, sys
from opus.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
"""
NEVER_FOR_OPERATOR_COMMANDS = ("anthropic", "httpx", "apprise", "detect_secrets", "watchfiles",
                               "opus.engines", "opus.forges", "opus.notify", "opus.pipeline")


def _modules(cwd: Path, *argv: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, env=clean_env(cwd),
                            capture_output=True, text=True, timeout=60, check=False)
    names: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(names)


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    below = tuple(prefix + "." for prefix in prefixes)
    return sorted(m for m in modules if m in prefixes or m.startswith(below))


def test_version_and_help_load_neither_pydantic_nor_sqlalchemy(tmp_path: Path) -> None:
    for argv in (["--version"], ["--help"], ["status", "--help"]):
        assert not _loaded(_modules(tmp_path, *argv), ("pydantic", "sqlalchemy")), argv


@pytest.mark.parametrize(
    "argv", [["status"], ["status", "--json"], ["pause"], ["metrics"], ["top"]]
)
def test_operator_commands_load_no_engine_forge_notifier_or_pipeline(
    tmp_path: Path, argv: list[str]
) -> None:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    project = tmp_path / "p"
    assert run_opus("pause", cwd=project).code == 0  # the registry exists
    modules = _modules(project, *argv)
    assert "opus.registry" in modules, "the command really ran"
    assert not _loaded(modules, NEVER_FOR_OPERATOR_COMMANDS), argv


@pytest.mark.parametrize("argv", [["status"], ["status", "--json"]])
def test_status_reads_the_settings_without_pydantic(tmp_path: Path, argv: list[str]) -> None:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    project = tmp_path / "p"
    assert run_opus("pause", cwd=project).code == 0
    modules = _modules(project, *argv)
    assert "opus.registry.reader" in modules, "the command really ran"
    assert not _loaded(modules, ("pydantic", "pydantic_settings", "sqlalchemy")), argv
