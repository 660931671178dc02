"""Engine `claude-code`: the headless Claude Code CLI plays the role.

`claude -p <prompt> --output-format json` runs with the worktree as working directory.
It runs outside opus's sandbox, because it needs the network and its own credentials;
its permission settings are the guard instead: the coder may edit files and run
commands (`acceptEdits` plus an allow-list), the planner and the reviewer only read
(`Edit`/`Write` disallowed). The planner and the reviewer end their reply with a fenced
```json block shaped like `submit_plan` / `submit_review`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role, Usage
from opus.engines.base import AgentFailed, stopped, tail
from opus.engines.submit import InvalidSubmission, describe_output, parse_submission
from opus.errors import EngineError
from opus.seams import AgentResult, AgentTask

# Beyond this a prompt goes through stdin: one argv string may not exceed 128 KiB on Linux.
MAX_ARG_CHARS = 100_000
READ_TOOLS = "Read,Glob,Grep,LS,Bash(git diff:*),Bash(git log:*),Bash(git show:*),Bash(ls:*)"
WRITE_TOOLS = "Read,Glob,Grep,LS,Edit,MultiEdit,Write,Bash"
FENCED_JSON = re.compile(r"```json\s*\n(.*?)\n\s*```", re.DOTALL)


@dataclass(frozen=True)
class _Finished:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool


class ClaudeCodeEngine:
    """Implements `opus.seams.Engine` by running `agents.claude_bin` headless."""

    def __init__(self, agents: AgentsConfig, sandbox_cfg: SandboxConfig) -> None:
        self.claude_bin = agents.claude_bin
        self.sandbox_cfg = sandbox_cfg

    def run(self, task: AgentTask) -> AgentResult:
        """Run claude once for `task` and turn its JSON result into an `AgentResult`."""
        binary = shutil.which(self.claude_bin)
        if binary is None:
            raise EngineError(
                f"the Claude Code CLI {self.claude_bin!r} was not found on PATH; install it "
                "or set agents.claude_bin to its full path"
            )
        argv, stdin = self._argv(binary, task)
        task.on_activity(f"{task.role}: running {self.claude_bin} -p (claude-code)")
        finished = _run(argv, cwd=task.worktree, stdin=stdin, timeout_s=task.timeout_s)
        if finished.timed_out:
            detail = f"claude ran past the stage's {task.timeout_s:.0f}s limit."
            return stopped(task, "timeout", detail)
        data = _parse(finished)
        task.on_activity(f"{task.role}: claude finished ({data.get('subtype', '?')})")
        return _result(task, data)

    def _argv(self, binary: str, task: AgentTask) -> tuple[list[str], str | None]:
        system = task.system_prompt
        if task.role is not Role.CODER:
            system += "\n\n" + describe_output(
                task.role, "in a fenced ```json block at the very end of your final reply"
            )
        writes = task.role is Role.CODER
        argv = [binary, "-p"]
        stdin: str | None = task.user_message
        if len(task.user_message) <= MAX_ARG_CHARS:
            argv.append(task.user_message)
            stdin = None
        argv += [
            "--output-format", "json",
            "--append-system-prompt", system,
            "--max-turns", str(task.max_turns),
            "--model", task.model,
            "--permission-mode", "acceptEdits" if writes else "default",
            "--allowedTools", WRITE_TOOLS if writes else READ_TOOLS,
        ]  # fmt: skip
        if not writes:
            argv += ["--disallowedTools", "Edit,MultiEdit,Write,NotebookEdit"]
        return argv, stdin


def _run(argv: list[str], *, cwd: Path, stdin: str | None, timeout_s: float) -> _Finished:
    """Run `argv` in its own process group; the whole group is killed on timeout."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise EngineError(f"cannot start {argv[0]}: {exc}; check agents.claude_bin") from exc
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return _Finished(proc.returncode, stdout, stderr, timed_out=True)
    return _Finished(proc.returncode, stdout, stderr, timed_out=False)


def _parse(finished: _Finished) -> dict[str, Any]:
    """The CLI's JSON result object (the last JSON line of stdout)."""
    for line in reversed(finished.stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("type") == "result":
            return data
    raise EngineError(
        f"claude exited {finished.exit_code} without a JSON result; its output ends with: "
        f"{tail(finished.stderr or finished.stdout, 1000)}; check that it is logged in "
        "(run `claude` once by hand) and that agents.claude_bin is the Claude Code CLI"
    )


def _result(task: AgentTask, data: dict[str, Any]) -> AgentResult:
    spent: dict[str, Any] = {
        "usage": _usage(data.get("usage")),
        "cost_usd": float(data.get("total_cost_usd") or 0.0),
        "turns": int(data.get("num_turns") or 0),
    }
    text = str(data.get("result") or "")
    if data.get("subtype") == "error_max_turns":
        detail = f"it used all {task.max_turns} turns (pipeline.max_turns)."
        return stopped(task, "max_turns", detail, summary=text, **spent)
    if data.get("is_error"):
        raise AgentFailed(
            f"claude reported an error ({data.get('subtype')}): {tail(text, 1000)}",
            AgentResult(stop_reason="end_turn", output={}, **spent),
        )
    if task.role is Role.CODER:
        return AgentResult(stop_reason="end_turn", output={"summary": text}, **spent)
    try:
        return AgentResult(
            stop_reason="submitted", output=_fenced_submission(task.role, text), **spent
        )
    except InvalidSubmission as exc:
        raise AgentFailed(
            f"the {task.role}'s reply has no usable ```json result block: {exc}",
            AgentResult(stop_reason="end_turn", output={}, **spent),
        ) from exc


def _fenced_submission(role: Role, text: str) -> dict[str, Any]:
    blocks = FENCED_JSON.findall(text)
    if not blocks:
        raise InvalidSubmission("the reply does not end with a fenced ```json block")
    return parse_submission(role, blocks[-1])


def _usage(raw: Any) -> Usage:
    raw = raw if isinstance(raw, dict) else {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(raw.get("cache_creation_input_tokens") or 0),
    )
