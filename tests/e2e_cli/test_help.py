"""Every command has `--help` and a row in README.md's command table."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from opus.cli import build_parser, main
from tests.e2e_cli.helpers import run_opus

README = Path(__file__).resolve().parents[2] / "README.md"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


COMMANDS = sorted(_subcommands(build_parser()))


def test_the_parser_has_every_spec_command() -> None:
    spec = {"init", "run", "status", "logs", "retry", "cancel", "pause", "resume", "doctor",
            "metrics", "service"}
    assert spec <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_zero_and_describes_the_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: opus {command}")
    description = _subcommands(build_parser())[command].description
    # argparse wraps the description to the terminal's width.
    assert description and " ".join(description.split()) in " ".join(out.split())


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_opus("--help", cwd=tmp_path)
    assert result.code == 0, result.err
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", result.out, re.M), command


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    result = run_opus(cwd=tmp_path)
    assert result.code == 2
    assert "usage: opus" in result.out


def test_readme_command_table_has_every_command() -> None:
    table = [line for line in README.read_text().splitlines() if line.startswith("| `opus ")]
    documented = {word for line in table for word in re.findall(r"`opus (\w+)", line)}
    assert documented == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_table_names_every_option(command: str) -> None:
    cells = [line.split(" | ")[0] for line in README.read_text().splitlines()
             if line.startswith("| `opus ")]
    usage = " ".join(cell for cell in cells if f"`opus {command}" in cell)
    actions = _subcommands(build_parser())[command]._actions
    # Each option is shown as `[--flag…`, by either of its spellings (`-f`, `--follow`).
    missing = [action.option_strings for action in actions
               if action.option_strings and "-h" not in action.option_strings
               and not any(f"[{flag}" in usage for flag in action.option_strings)]
    assert not missing, f"README's row for `opus {command}` lacks {missing}: {usage}"


def test_readme_opens_with_the_two_setup_commands() -> None:
    commands = re.findall(r"^python3 -m pip install .*$", README.read_text(), re.M)
    assert commands[:2] == [
        "python3 -m pip install -e . && opus demo"
        "                       # install, then take one FR through every stage",
        "python3 -m pip install -e '.[dev]' && python3 -m pytest"
        "        # the test suite",
    ]
