"""What a `claude-code` stage spent when claude does not end with a successful result.

A fake `claude` on PATH prints what the Claude Code CLI prints with `--output-format
stream-json --verbose` (one JSON object a line: assistant messages with their call's
usage, then the result), then ends, fails or hangs as told. The real engine runs it in
the real sandbox, in a real worktree.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opus.config import AgentsConfig
from opus.domain import Role, Usage
from opus.engines.base import AgentFailed
from opus.engines.claude_code import ClaudeCodeEngine
from opus.engines.pricing import cost_usd
from opus.errors import EngineError
from opus.seams import AgentTask
from tests.engines.conftest import SANDBOX_CFG, install_fake_claude

MODEL = "claude-sonnet-4-6"
FAKE_CLAUDE = r"""#!/bin/sh
# Prints the stream it was given, then hangs or exits with the given code.
here=$(cd "$(dirname "$0")/.." && pwd)
printf '%s\n' "$@" > .fake-claude-argv  # in its cwd, the worktree: writable
cat "$here/stream.jsonl"
if [ -f "$here/hang" ]; then exec sleep 60; fi
exit "$(cat "$here/exit")"
"""
TaskFactory = Callable[..., AgentTask]
Speak = Callable[..., Path]


@pytest.fixture
def speak(monkeypatch: pytest.MonkeyPatch) -> Iterator[Speak]:
    """Install the fake `claude` on PATH, in a directory under /var/tmp (which the sandbox
    shows read-only); the returned function sets the lines it prints."""
    root = install_fake_claude(FAKE_CLAUDE, monkeypatch)

    def lines(*objects: dict[str, Any], exit_code: int = 0, hang: bool = False) -> Path:
        (root / "stream.jsonl").write_text("".join(json.dumps(o) + "\n" for o in objects))
        (root / "exit").write_text(str(exit_code))
        if hang:
            (root / "hang").touch()
        return root

    yield lines
    shutil.rmtree(root, ignore_errors=True)


def _assistant(message_id: str, output_tokens: int, block: dict[str, Any]) -> dict[str, Any]:
    usage = {"input_tokens": 3, "cache_creation_input_tokens": 2000,
             "cache_read_input_tokens": 9000, "output_tokens": output_tokens}
    return {"type": "assistant", "session_id": "s1", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": MODEL,
        "content": [block], "usage": usage}}  # fmt: skip


# Two model calls; the first wrote two content blocks, which the CLI prints as two lines.
STREAM = (
    {"type": "system", "subtype": "init", "session_id": "s1", "model": MODEL},
    _assistant("msg_1", 40, {"type": "text", "text": "Looking at the code."}),
    _assistant("msg_1", 40, {"type": "tool_use", "id": "t1", "name": "Bash",
                             "input": {"command": "ls"}}),
    {"type": "user", "session_id": "s1", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "README.md"}]}},
    _assistant("msg_2", 25, {"type": "text", "text": "Now the tests."}),
)  # fmt: skip
CALLS = Usage(3, 40, 9000, 2000) + Usage(3, 25, 9000, 2000)


def _engine() -> ClaudeCodeEngine:
    return ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG, environ={})


def test_a_claude_killed_at_the_stage_timeout_keeps_what_its_calls_spent(
    make_task: TaskFactory, speak: Speak
) -> None:
    speak(*STREAM, hang=True)
    task = make_task(Role.CODER, timeout_s=15)
    result = _engine().run(task)

    assert result.stop_reason == "timeout"
    assert (result.usage, result.turns) == (CALLS, 2)
    assert result.cost_usd == pytest.approx(cost_usd(MODEL, CALLS)) and result.cost_usd > 0
    argv = (task.worktree / ".fake-claude-argv").read_text().splitlines()
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv


def test_a_claude_that_dies_without_a_result_keeps_what_its_calls_spent(
    make_task: TaskFactory, speak: Speak
) -> None:
    speak(*STREAM, exit_code=1)
    with pytest.raises(EngineError, match="without a JSON result") as caught:
        _engine().run(make_task(Role.CODER))

    partial = caught.value.partial
    assert partial is not None, "the two billed calls must not be lost"
    assert (partial.usage, partial.turns) == (CALLS, 2)
    assert partial.cost_usd == pytest.approx(cost_usd(MODEL, CALLS))


def test_an_error_during_execution_is_an_error_with_the_spend_it_reports(
    make_task: TaskFactory, speak: Speak
) -> None:
    # What the CLI prints when an API error ends the run: `is_error` false, no `result`.
    error = {"type": "result", "subtype": "error_during_execution", "is_error": False,
             "num_turns": 2, "session_id": "s1", "total_cost_usd": 0.0512,
             "usage": {"input_tokens": 6, "cache_creation_input_tokens": 4000,
                       "cache_read_input_tokens": 18000, "output_tokens": 65}}  # fmt: skip
    speak(*STREAM, error, exit_code=1)
    with pytest.raises(AgentFailed, match="error_during_execution") as caught:
        _engine().run(make_task(Role.CODER))

    assert caught.value.partial.usage == CALLS
    assert caught.value.partial.cost_usd == pytest.approx(0.0512)


def test_a_completed_run_is_what_its_result_says(make_task: TaskFactory, speak: Speak) -> None:
    done = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
            "result": "Implemented sub().", "session_id": "s1", "total_cost_usd": 0.0499,
            "usage": {"input_tokens": 6, "cache_creation_input_tokens": 4000,
                      "cache_read_input_tokens": 18000, "output_tokens": 65}}  # fmt: skip
    speak(*STREAM, done)
    result = _engine().run(make_task(Role.CODER))

    assert (result.stop_reason, result.output) == ("end_turn", {"summary": "Implemented sub()."})
    assert (result.usage, result.turns) == (CALLS, 2)
    assert result.cost_usd == pytest.approx(0.0499)
