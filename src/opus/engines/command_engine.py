"""Engine `command`: any command line plays the role (`agents.command`).

opus writes the system prompt and the user message into a prompt file and runs the
argv, with `{prompt_file}`, `{output_file}` and `{role}` replaced, through the job's
sandbox with the worktree as working directory and writable. The coder's summary is the
tail of the command's output; the planner and the reviewer must write JSON shaped like
`submit_plan` / `submit_review` to `{output_file}`.

Both files live in a scratch folder inside the worktree (the one place the sandbox lets
the command see and write), removed when the run ends so they are never committed.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role
from opus.engines.base import SCRATCH_DIR, AgentFailed, stopped, tail
from opus.engines.submit import InvalidSubmission, describe_output, parse_submission
from opus.errors import ConfigError
from opus.seams import AgentResult, AgentTask


class CommandEngine:
    """Implements `opus.seams.Engine` by running `agents.command` in the sandbox."""

    def __init__(self, agents: AgentsConfig, sandbox_cfg: SandboxConfig) -> None:
        if not agents.command:
            raise ConfigError(
                'config key `agents.command` is empty, but agents.engine is "command"; '
                'set it to an argv such as ["my-agent", "--prompt", "{prompt_file}"]'
            )
        self.argv = list(agents.command)
        self.sandbox_cfg = sandbox_cfg

    def run(self, task: AgentTask) -> AgentResult:
        """Run the command once for `task` and read its result."""
        scratch = task.worktree / SCRATCH_DIR
        scratch.mkdir(exist_ok=True)
        prompt_file, output_file = scratch / "prompt.md", scratch / "output.json"
        try:
            prompt_file.write_text(_prompt(task, output_file), encoding="utf-8")
            command = shlex.join(self._argv(task.role, prompt_file, output_file))
            task.on_activity(f"{task.role}: running {command}")
            result = task.sandbox.run(
                command, worktree=task.worktree, timeout_s=task.timeout_s, writable=True
            )
            task.on_activity(f"{task.role}: command exited {result.exit_code}")
            if result.timed_out:
                detail = f"the command ran past the stage's {task.timeout_s:.0f}s limit."
                return stopped(task, "timeout", detail, summary=tail(result.output))
            if result.exit_code != 0:
                raise AgentFailed(
                    f"the {task.role} command `{command}` exited {result.exit_code}; fix the "
                    f"command (agents.command). Its output ends with:\n{tail(result.output, 2000)}",
                    AgentResult(stop_reason="end_turn", output={}),
                )
            return self._result(task, result.output, output_file)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _argv(self, role: Role, prompt_file: Path, output_file: Path) -> list[str]:
        values = {
            "{prompt_file}": str(prompt_file),
            "{output_file}": str(output_file),
            "{role}": role.value,
        }
        return [_substitute(part, values) for part in self.argv]

    @staticmethod
    def _result(task: AgentTask, output: str, output_file: Path) -> AgentResult:
        if task.role is Role.CODER:
            return AgentResult(stop_reason="end_turn", output={"summary": tail(output)}, turns=1)
        try:
            text = output_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AgentFailed(
                f"the {task.role} command did not write its result to {{output_file}} "
                f"({exc}); it must write JSON shaped like the {task.role}'s submit tool",
                AgentResult(stop_reason="end_turn", output={}, turns=1),
            ) from exc
        try:
            submission = parse_submission(task.role, text)
        except InvalidSubmission as exc:
            raise AgentFailed(
                f"the {task.role} command wrote an unusable {{output_file}}: {exc}",
                AgentResult(stop_reason="end_turn", output={}, turns=1),
            ) from exc
        return AgentResult(stop_reason="submitted", output=submission, turns=1)


def _prompt(task: AgentTask, output_file: Path) -> str:
    parts = [task.system_prompt.strip(), "---", task.user_message.strip()]
    if task.role is not Role.CODER:
        parts.append(describe_output(task.role, f"to the file {output_file}"))
    return "\n\n".join(parts) + "\n"


def _substitute(part: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: other braces in an argv are left alone.
    for placeholder, value in values.items():
        part = part.replace(placeholder, value)
    return part
