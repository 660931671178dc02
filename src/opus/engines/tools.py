"""The tools an agent is offered per role (SPEC §5) and their client-side execution.

| role     | tools                                                   |
| -------- | ------------------------------------------------------- |
| planner  | editor (`view` only), bash (read-only), `submit_plan`   |
| coder    | editor (all commands), bash (worktree writable)         |
| reviewer | editor (`view` only), bash (read-only), `submit_review` |

The planner (and the coder with `agents.coder_can_ask`) also gets `ask_human`
(`opus.engines.ask`).

`bash` is one persistent shell per stage inside the job's `Sandbox`, starting in the
worktree root: `cd`, variables and functions carry over between calls, as Anthropic's bash
tool documents. The editor and bash tool versions follow the model (`engines.models`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opus.domain import Role
from opus.engines.ask import ASK_HUMAN, ASK_HUMAN_TOOL, InvalidQuestions, validate_questions
from opus.engines.bash_session import BashSession, SessionResult
from opus.engines.editor import EDITOR_TOOL, Editor, ToolResult
from opus.engines.models import CURRENT_TOOLS, ToolVersions
from opus.engines.submit import (
    SUBMIT_PLAN_TOOL,
    SUBMIT_REVIEW_TOOL,
    SUBMIT_TOOL_NAME,
    InvalidSubmission,
    validate_submission,
)
from opus.errors import SandboxError
from opus.seams import Sandbox

__all__ = ["BASH_TOOL", "EDITOR_TOOL", "BashTool", "Editor", "ToolOutcome", "ToolResult", "Toolbox"]

BASH_TOOL: dict[str, Any] = {"type": CURRENT_TOOLS.bash_type, "name": CURRENT_TOOLS.bash_name}
# The sandbox already caps output; this smaller cap keeps one reply from flooding the context.
MAX_BASH_CHARS = 30_000
CACHE_CONTROL: dict[str, str] = {"type": "ephemeral"}


class BashTool:
    """The `bash` tool: `{command}` runs in the stage's persistent session, `{restart: true}`
    starts a new one (see `opus.engines.bash_session`)."""

    def __init__(
        self, sandbox: Sandbox, worktree: Path, *, writable: bool, timeout_s: float
    ) -> None:
        self.session = BashSession(sandbox, worktree, writable=writable)
        self.writable = writable
        self.timeout_s = timeout_s

    def __call__(self, tool_input: Mapping[str, Any]) -> ToolResult:
        """Run one command; failures of the command or the sandbox become error results."""
        if tool_input.get("restart"):
            self.session.restart()
            return ToolResult(
                "The bash session was restarted: a new shell in the worktree root, with no "
                "variables, functions or directory changes from before."
            )
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("Error: `command` is required and must be a string.", is_error=True)
        try:
            result = self.session.run(command, timeout_s=self.timeout_s)
        except SandboxError as exc:
            return ToolResult(f"Error: the sandbox could not run the command: {exc}", is_error=True)
        return ToolResult(self._format(result))

    def close(self) -> None:
        """End the session (at the end of the stage)."""
        self.session.close()

    def _format(self, result: SessionResult) -> str:
        header = f"exit code: {result.exit_code}"
        if result.timed_out:
            header += (
                f" (killed after the {self.timeout_s:.0f}s command timeout; the bash session "
                "was restarted, so directory changes, variables and functions are gone)"
            )
        elif result.shell_exited:
            header += (
                " (the shell exited; the next command starts a new bash session in the "
                "worktree root)"
            )
        if not self.writable:
            header += " [read-only worktree]"
        output = result.output
        if len(output) > MAX_BASH_CHARS:
            cut = len(output) - MAX_BASH_CHARS
            output = f"[first {cut} characters cut]\n" + output[-MAX_BASH_CHARS:]
        return f"{header}\n{output}" if output else header


@dataclass(frozen=True)
class ToolOutcome:
    """One executed tool call: the result for the model, and a valid submission if any."""

    result: ToolResult
    submission: dict[str, Any] | None = None
    questions: list[dict[str, Any]] | None = None
    """A valid `ask_human` call: the stage ends and the job waits for a person."""


class Toolbox:
    """The tools of one role over one worktree: their definitions and their execution.

    `versions` are the Anthropic-defined tool versions the model accepts; call `close()`
    when the stage ends, to end its bash session.
    """

    def __init__(
        self,
        role: Role,
        worktree: Path,
        sandbox: Sandbox,
        *,
        command_timeout_s: float,
        versions: ToolVersions = CURRENT_TOOLS,
        can_ask: bool = False,
    ) -> None:
        self.role = role
        self.can_ask = can_ask
        self.versions = versions
        writable = role is Role.CODER
        self.editor = Editor(worktree, read_only=not writable)
        self.bash = BashTool(sandbox, worktree, writable=writable, timeout_s=command_timeout_s)
        self.submit_name = SUBMIT_TOOL_NAME.get(role)

    def definitions(self) -> list[dict[str, Any]]:
        """Tool definitions for the request; the last one carries the cache breakpoint."""
        tools: list[dict[str, Any]] = [
            {"type": self.versions.editor_type, "name": self.versions.editor_name},
            {"type": self.versions.bash_type, "name": self.versions.bash_name},
        ]
        if self.role is Role.PLANNER:
            tools.append(copy.deepcopy(SUBMIT_PLAN_TOOL))
        elif self.role is Role.REVIEWER:
            tools.append(copy.deepcopy(SUBMIT_REVIEW_TOOL))
        if self.can_ask:
            tools.append(copy.deepcopy(ASK_HUMAN_TOOL))
        # Tools never change within a stage, so they end a stable, cacheable prefix.
        tools[-1]["cache_control"] = dict(CACHE_CONTROL)
        return tools

    def execute(self, name: str, tool_input: Any) -> ToolOutcome:
        """Run the tool `name`; an unknown tool or a malformed input is an error result."""
        if not isinstance(tool_input, Mapping):
            error = ToolResult("Error: tool input must be a JSON object.", is_error=True)
            return ToolOutcome(error)
        if name == self.versions.editor_name:
            return ToolOutcome(self.editor(tool_input))
        if name == self.versions.bash_name:
            return ToolOutcome(self.bash(tool_input))
        if name == self.submit_name:
            return self._submit(tool_input)
        if name == ASK_HUMAN and self.can_ask:
            return self._ask(tool_input)
        offered = ", ".join(t["name"] for t in self.definitions())
        message = f"Error: no tool named {name!r}; use one of {offered}."
        return ToolOutcome(ToolResult(message, is_error=True))

    def close(self) -> None:
        """End the stage's bash session and everything it started."""
        self.bash.close()

    def _ask(self, tool_input: Mapping[str, Any]) -> ToolOutcome:
        try:
            questions = validate_questions(dict(tool_input))
        except InvalidQuestions as exc:
            message = f"Error: {exc}. Fix these fields and call {ASK_HUMAN} again."
            return ToolOutcome(ToolResult(message, is_error=True))
        return ToolOutcome(ToolResult("Asked; you will be started again with the answers."),
                           questions=questions)

    def _submit(self, tool_input: Mapping[str, Any]) -> ToolOutcome:
        try:
            output = validate_submission(self.role, dict(tool_input))
        except InvalidSubmission as exc:
            message = f"Error: {exc}. Fix these fields and call {self.submit_name} again."
            return ToolOutcome(ToolResult(message, is_error=True))
        return ToolOutcome(ToolResult("Submitted."), submission=output)
