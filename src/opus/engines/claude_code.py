"""Engine `claude-code`: the headless Claude Code CLI plays the role.

`claude -p <prompt> --output-format stream-json --verbose` runs with the worktree as
working directory, inside the job's sandbox (`claude_launch.py`): granted the network and
its credential, with a config dir of its own, the worktree its only writable place
(read-only for the planner and the reviewer, as their bash is in engine `anthropic`),
and the stage's timeout. Its last line is the JSON result (`result`, `total_cost_usd`,
`usage`, `num_turns`, `subtype`); the lines before it are the conversation, each
assistant message with the usage of the model call that wrote it. When no result comes
(the stage's wall time ran out and claude was killed, or it died), what those messages
add up to is what the stage spent. The CLI's own errors (`subtype:
error_during_execution`, `is_error`) come as a result with the usage so far.
Its permission settings guard within the sandbox: the coder may edit files and run
commands (`acceptEdits` plus an allow-list), the planner and the reviewer only read
(`Edit`/`Write` disallowed). The planner and the reviewer end their reply with a fenced
```json block shaped like `submit_plan` / `submit_review`. With `sandbox.kind = "none"`
claude runs directly, as the user's own claude, under the loud no-isolation warning.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role, Usage
from opus.engines.base import AgentFailed, stopped, tail
from opus.engines.claude_launch import Finished, run_direct, run_sandboxed
from opus.engines.pricing import cost_usd
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
        self.prices = agents.prices
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
        streamed = _streamed(finished.stdout, task.model, self.prices)
        if finished.timed_out:
            detail = f"claude ran past the stage's {task.timeout_s:.0f}s limit."
            return stopped(task, "timeout", detail, **streamed)
        data = _parse(finished, streamed)
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
            writable=task.role is Role.CODER,
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
            "--output-format", "stream-json", "--verbose",
            "--append-system-prompt", system,
            "--max-turns", str(task.max_turns),
            "--model", task.model,
            "--permission-mode", "acceptEdits" if writes else "default",
            "--allowedTools", WRITE_TOOLS if writes else READ_TOOLS,
        ]  # fmt: skip
        if not writes:
            argv += ["--disallowedTools", "Edit,MultiEdit,Write,NotebookEdit"]
        return argv, stdin


def _parse(finished: Finished, streamed: dict[str, Any]) -> dict[str, Any]:
    """The CLI's JSON result object (the last JSON line of stdout). Without one, an
    `EngineError` carrying what the streamed messages spent, if anything."""
    results = [data for data in _json_lines(finished.stdout) if data.get("type") == "result"]
    if results:
        return results[-1]
    error = EngineError(
        f"claude exited {finished.exit_code} without a JSON result; its output ends with: "
        f"{tail(finished.stderr or finished.stdout, 1000)}; check that its credential is "
        "set (ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`: "
        "in the sandbox it cannot read ~/.claude) and that agents.claude_bin is the "
        "Claude Code CLI"
    )
    if streamed["turns"]:
        error.partial = AgentResult("end_turn", {}, report=str(error), **streamed)
    raise error


def _result(task: AgentTask, data: dict[str, Any]) -> AgentResult:
    spent: dict[str, Any] = {
        "usage": _usage(data.get("usage")),
        "cost_usd": float(data.get("total_cost_usd") or 0.0),
        "turns": int(data.get("num_turns") or 0),
    }
    text = str(data.get("result") or "")
    subtype = str(data.get("subtype") or "")
    if subtype == "error_max_turns":
        detail = f"it used all {task.max_turns} turns (pipeline.max_turns)."
        return stopped(task, "max_turns", detail, summary=text, **spent)
    if data.get("is_error") or subtype.startswith("error"):
        # `error_during_execution` comes with `is_error: false`: an error all the same.
        said = tail(text or "; ".join(map(str, data.get("errors") or [])), 1000)
        raise AgentFailed(
            f"claude reported an error ({subtype}): {said or 'no message'}",
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


def _json_lines(stdout: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of `stdout`, one a line (other lines are skipped)."""
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            yield data


def _streamed(
    stdout: str, model: str, prices: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """What the assistant messages of the stream spent: usage, cost and turns (model calls).

    Each message carries its call's usage; one message may come as several lines (one per
    content block) with the same id and usage, so each id counts once, by its last line."""
    calls: dict[str, tuple[str, Usage]] = {}
    for index, data in enumerate(_json_lines(stdout)):
        message = data.get("message")
        if data.get("type") != "assistant" or not isinstance(message, dict):
            continue
        used = _usage(message.get("usage"))
        if used.total:  # not a message the CLI made up itself (model "<synthetic>")
            call = str(message.get("id") or f"line-{index}")
            calls[call] = (str(message.get("model") or model), used)
    usage = sum((used for _model, used in calls.values()), Usage())
    cost = sum(cost_usd(called, used, prices) for called, used in calls.values())
    return {"usage": usage, "cost_usd": cost, "turns": len(calls)}


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
