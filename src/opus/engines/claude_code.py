"""Engine `claude-code`: the headless Claude Code CLI plays the role.

`claude -p <prompt> --output-format json` runs with the worktree as working directory,
inside the job's sandbox (`claude_launch.py`): granted the network and its credential,
with a config dir of its own, the worktree its only writable place, and the stage's
timeout. Its permission settings guard within that: the coder may edit files and run
commands (`acceptEdits` plus an allow-list), the planner and the reviewer only read
(`Edit`/`Write` disallowed). The planner and the reviewer end their reply with a fenced
```json block shaped like `submit_plan` / `submit_review`. With `sandbox.kind = "none"`
claude runs directly, as the user's own claude, under the loud no-isolation warning.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from typing import Any

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role, Usage
from opus.engines.base import AgentFailed, stopped, tail
from opus.engines.claude_launch import Finished, run_direct, run_sandboxed
from opus.engines.submit import InvalidSubmission, describe_output, parse_submission
from opus.errors import EngineError
from opus.sandbox.environment import parent_environ
from opus.seams import AgentResult, AgentTask

# Beyond this a prompt goes through stdin: one argv string may not exceed 128 KiB on Linux.
MAX_ARG_CHARS = 100_000
READ_TOOLS = "Read,Glob,Grep,LS,Bash(git diff:*),Bash(git log:*),Bash(git show:*),Bash(ls:*)"
WRITE_TOOLS = "Read,Glob,Grep,LS,Edit,MultiEdit,Write,Bash"
FENCED_JSON = re.compile(r"```json\s*\n(.*?)\n\s*```", re.DOTALL)


class ClaudeCodeEngine:
    """Implements `opus.seams.Engine` by running `agents.claude_bin` headless.

    `environ` (default: this process's) is where claude's credential comes from.
    """

    def __init__(
        self,
        agents: AgentsConfig,
        sandbox_cfg: SandboxConfig,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.claude_bin = agents.claude_bin
        self.sandbox_cfg = sandbox_cfg
        self.environ = parent_environ() if environ is None else dict(environ)

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
        finished = self._launch(argv, stdin, task)
        if finished.timed_out:
            detail = f"claude ran past the stage's {task.timeout_s:.0f}s limit."
            return stopped(task, "timeout", detail)
        data = _parse(finished)
        task.on_activity(f"{task.role}: claude finished ({data.get('subtype', '?')})")
        return _result(task, data)

    def _launch(self, argv: list[str], stdin: str | None, task: AgentTask) -> Finished:
        if self.sandbox_cfg.kind == "none":
            return run_direct(argv, cwd=task.worktree, stdin=stdin, timeout_s=task.timeout_s)
        return run_sandboxed(
            argv,
            stdin=stdin,
            sandbox=task.sandbox,
            worktree=task.worktree,
            environ=self.environ,
            timeout_s=task.timeout_s,
        )

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


def _parse(finished: Finished) -> dict[str, Any]:
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
        f"{tail(finished.stderr or finished.stdout, 1000)}; check that its credential is "
        "set (ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`: "
        "in the sandbox it cannot read ~/.claude) and that agents.claude_bin is the "
        "Claude Code CLI"
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
