"""Engines `command` and `claude-code`, with real processes in real worktrees."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from opus.config import AgentsConfig
from opus.domain import Role
from opus.engines.base import AgentFailed
from opus.engines.claude_code import MAX_ARG_CHARS, ClaudeCodeEngine
from opus.engines.command_engine import SCRATCH_DIR, CommandEngine
from opus.errors import EngineError
from opus.seams import AgentTask
from tests.engines.conftest import SANDBOX_CFG

TaskFactory = Callable[..., AgentTask]
PLAN = {"summary": "Add sub().", "steps": [{"title": "Write sub", "postcondition": "pytest ok"}]}


def command_engine(script: str, *args: str) -> CommandEngine:
    return CommandEngine(
        AgentsConfig(engine="command", command=["sh", "-c", script, *args]), SANDBOX_CFG
    )


def test_command_coder_edits_and_summarises(make_task: TaskFactory, repo: Path) -> None:
    engine = command_engine(
        'grep -q "FR-7" "$0" && printf "\\ndef sub(a, b):\\n    return a - b\\n" >> src/calc.py'
        ' && echo "coder as $1: added sub"',
        "{prompt_file}",
        "{role}",
    )
    result = engine.run(make_task(Role.CODER))
    assert result.stop_reason == "end_turn"
    assert result.output["summary"].endswith("coder as coder: added sub")
    assert "def sub(a, b):" in (repo / "src/calc.py").read_text()
    assert not (repo / SCRATCH_DIR).exists(), "the scratch folder is removed"


def test_command_planner_writes_output_file(make_task: TaskFactory, repo: Path) -> None:
    plan = json.dumps(PLAN)
    engine = command_engine(
        f'grep -q submit_plan "$0" && grep -q "$1" "$0" && echo \'{plan}\' > "$1"',
        "{prompt_file}",
        "{output_file}",
    )
    result = engine.run(make_task(Role.PLANNER))
    assert result.stop_reason == "submitted"
    assert result.output == PLAN


@pytest.mark.parametrize(
    ("script", "match"),
    [
        ("true", "did not write"),
        ('echo \'{"verdict": "meh"}\' > "$0"', "unusable"),
        ("echo boom; exit 7", "exited 7"),
    ],
)
def test_command_failures_fail_the_stage(make_task: TaskFactory, script: str, match: str) -> None:
    with pytest.raises(AgentFailed, match=match):
        command_engine(script, "{output_file}").run(make_task(Role.REVIEWER))


def test_command_timeout(make_task: TaskFactory) -> None:
    result = command_engine("sleep 10").run(make_task(Role.CODER, timeout_s=0.5))
    assert result.stop_reason == "timeout"


# ------------------------------------------------------------------------ claude-code

FAKE_CLAUDE = r"""#!/bin/sh
# A stand-in for the Claude Code CLI: records its argv and stdin, answers like `claude -p`.
printf '%s\n' "$@" > "$FAKE_CLAUDE_DIR/argv"
pwd > "$FAKE_CLAUDE_DIR/cwd"
if [ "$2" = "--output-format" ]; then cat > "$FAKE_CLAUDE_DIR/stdin"; fi
echo "some progress on stderr" >&2
cat "$FAKE_CLAUDE_DIR/reply.json"
"""


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a fake `claude` on PATH; the returned function sets its JSON reply."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(FAKE_CLAUDE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLAUDE_DIR", str(tmp_path))

    def reply(result: str, **fields: object) -> Path:
        data = {
            "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1200,
            "duration_api_ms": 1100, "num_turns": 4, "result": result, "session_id": "abc",
            "total_cost_usd": 0.0421,
            "usage": {"input_tokens": 120, "cache_creation_input_tokens": 900,
                      "cache_read_input_tokens": 3000, "output_tokens": 450},
            **fields,
        }  # fmt: skip
        (tmp_path / "reply.json").write_text(json.dumps(data) + "\n")
        return tmp_path

    return reply


def test_claude_code_planner(
    make_task: TaskFactory, repo: Path, fake_claude: Callable[..., Path]
) -> None:
    logs = fake_claude(f"I read the code.\n\n```json\n{json.dumps(PLAN, indent=2)}\n```\n")
    result = ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG).run(
        make_task(Role.PLANNER, max_turns=9)
    )
    assert result.stop_reason == "submitted"
    assert result.output == PLAN
    assert result.cost_usd == pytest.approx(0.0421)
    assert result.usage.total == 120 + 900 + 3000 + 450
    assert result.turns == 4
    argv = (logs / "argv").read_text().splitlines()
    assert argv[0] == "-p" and "FR-7" in argv[1]
    assert argv[argv.index("--max-turns") + 1] == "9"
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-6"
    assert "Edit" in argv[argv.index("--disallowedTools") + 1]
    assert (logs / "cwd").read_text().strip() == str(repo)


def test_claude_code_coder_long_prompt_goes_through_stdin(
    make_task: TaskFactory, fake_claude: Callable[..., Path]
) -> None:
    logs = fake_claude("Implemented sub().")
    message = "FR-7 " + "x" * MAX_ARG_CHARS
    engine = ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG)
    result = engine.run(make_task(Role.CODER, user_message=message))
    assert result.stop_reason == "end_turn"
    assert result.output == {"summary": "Implemented sub()."}
    assert (logs / "stdin").read_text() == message
    argv = (logs / "argv").read_text().splitlines()
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"


def test_claude_code_outcomes(make_task: TaskFactory, fake_claude: Callable[..., Path]) -> None:
    engine = ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG)
    fake_claude("no json block here")
    with pytest.raises(AgentFailed, match="json"):
        engine.run(make_task(Role.REVIEWER))
    fake_claude("Credit balance is too low", is_error=True, subtype="error_during_execution")
    with pytest.raises(AgentFailed, match="Credit balance"):
        engine.run(make_task(Role.CODER))
    fake_claude("", subtype="error_max_turns")
    assert engine.run(make_task(Role.CODER)).stop_reason == "max_turns"


def test_claude_code_missing_binary(make_task: TaskFactory) -> None:
    engine = ClaudeCodeEngine(AgentsConfig(claude_bin="no-such-claude-cli"), SANDBOX_CFG)
    with pytest.raises(EngineError, match=r"agents\.claude_bin"):
        engine.run(make_task(Role.CODER))


def test_claude_code_without_json_result(
    make_task: TaskFactory, fake_claude: Callable[..., Path]
) -> None:
    logs = fake_claude("")
    (logs / "reply.json").write_text("Error: not logged in\n")
    engine = ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG)
    with pytest.raises(EngineError, match="without a JSON result"):
        engine.run(make_task(Role.CODER))
