"""`ScriptedEngine`: a deterministic `Engine` for unit tests and `opus demo` (no API key).

A script gives each role a list of rounds; round *n* is played on the role's *n*-th run
(the last round repeats), so a test can have the reviewer request changes on round 1 and
approve on round 2. A round is a list of steps, or a callable `(task) -> steps` when the
steps depend on the FR. Steps really act on the worktree through the same tools the
`anthropic` engine offers: `Write` uses the real editor tool, `Bash` runs through the
task's sandbox, and `Submit` ends the run with the role's output (validated like the
submit tools). No model is called: usage and cost are zero, and every output says it is
a rehearsal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opus.domain import Role
from opus.engines.base import AgentFailed, stopped
from opus.engines.editor import EDITOR_TOOL
from opus.engines.submit import InvalidSubmission, validate_submission
from opus.engines.tools import BASH_TOOL, Toolbox
from opus.errors import EngineError
from opus.seams import AgentResult, AgentTask

REHEARSAL = "[rehearsal]"
REPORT = "Rehearsal: a scripted engine played this stage; no model was called."


@dataclass(frozen=True)
class Write:
    """Create or overwrite `path` (worktree-relative) with `text`, via the editor tool."""

    path: str
    text: str


@dataclass(frozen=True)
class Bash:
    """Run `command` through the task's sandbox, via the bash tool."""

    command: str


@dataclass(frozen=True)
class Submit:
    """End the run: a plan or review dict, or `{"summary": ...}` for the coder."""

    output: dict[str, Any]


Step = Write | Bash | Submit
Round = Sequence[Step] | Callable[[AgentTask], Sequence[Step]]


@dataclass
class ScriptedEngine:
    """Implements `opus.seams.Engine` by playing `script`; records what it was given."""

    script: Mapping[Role, Sequence[Round]]
    command_timeout_s: float = 60.0
    tasks: list[AgentTask] = field(default_factory=list)
    """Every task `run` received, in order."""
    tool_log: list[tuple[str, str]] = field(default_factory=list)
    """(step description, tool result text) of every executed step."""

    def run(self, task: AgentTask) -> AgentResult:
        """Play the next round of `task.role`'s script in `task.worktree`."""
        played = sum(1 for seen in self.tasks if seen.role is task.role)
        self.tasks.append(task)
        rounds = self.script.get(task.role)
        if not rounds:
            raise EngineError(f"the scripted engine has no script for the {task.role} role")
        current = rounds[min(played, len(rounds) - 1)]
        steps = current(task) if callable(current) else current
        toolbox = Toolbox(
            task.role, task.worktree, task.sandbox, command_timeout_s=self.command_timeout_s
        )
        try:
            for turn, step in enumerate(steps, 1):
                if task.should_stop():
                    return stopped(task, "timeout", "opus asked it to stop.", turns=turn - 1)
                if isinstance(step, Submit):
                    return _finish(task, step.output, turn)
                self._act(task, toolbox, step)
        finally:
            toolbox.close()
        if task.role is Role.CODER:
            return _finish(task, {"summary": "done"}, len(steps))
        raise AgentFailed(
            f"the scripted {task.role} round ended without a Submit step; add one",
            AgentResult(stop_reason="end_turn", output={}, turns=len(steps), report=REPORT),
        )

    def _act(self, task: AgentTask, toolbox: Toolbox, step: Write | Bash) -> None:
        if isinstance(step, Write):
            name, tool_input = EDITOR_TOOL["name"], {
                "command": "create", "path": step.path, "file_text": step.text,
            }  # fmt: skip
        else:
            name, tool_input = BASH_TOOL["name"], {"command": step.command}
        description = f"{name}: {tool_input['command']} {tool_input.get('path', '')}".strip()
        task.on_activity(f"{REHEARSAL} {description}")
        result = toolbox.execute(name, tool_input).result
        self.tool_log.append((description, result.content))
        if result.is_error:
            raise EngineError(f"scripted step {description!r} failed: {result.content}")

    @classmethod
    def demo(cls) -> ScriptedEngine:
        """A script for any FR: plan two steps, write a small module and its test, approve."""
        return cls({Role.PLANNER: [_demo_plan], Role.CODER: [_demo_code], Role.REVIEWER: [
            [Bash("git status --short"), Submit(DEMO_REVIEW)]
        ]})  # fmt: skip


def _finish(task: AgentTask, output: dict[str, Any], turns: int) -> AgentResult:
    if task.role is Role.CODER:
        final = dict(output)
        reason: Any = "end_turn"
    else:
        try:
            final = validate_submission(task.role, output)
        except InvalidSubmission as exc:
            raise EngineError(f"the scripted {task.role} output is invalid: {exc}") from exc
        reason = "submitted"
    summary = str(final.get("summary", ""))
    if not summary.startswith(REHEARSAL):
        final["summary"] = f"{REHEARSAL} {summary}".strip()
    task.on_activity(f"{REHEARSAL} {task.role} finished")
    return AgentResult(stop_reason=reason, output=final, turns=turns, report=REPORT)


# ----------------------------------------------------------------------- the demo script

DEMO_MODULE = "opus_rehearsal.py"
DEMO_TEST = "test_opus_rehearsal.py"
DEMO_REVIEW = {
    "verdict": "approve",
    "summary": "The rehearsal module and its test are in place.",
    "comments": [],
}
_FR_ID = re.compile(r"Feature request (\S+?):")


def _fr_id(task: AgentTask) -> str:
    found = _FR_ID.search(task.user_message)
    return found.group(1) if found else "FR"


def _demo_plan(task: AgentTask) -> Sequence[Step]:
    fr_id = _fr_id(task)
    return [
        Bash("ls"),
        Submit(
            {
                "summary": f"Rehearse {fr_id}: add a tiny module and a test for it.",
                "steps": [
                    {"title": f"Add {DEMO_MODULE}", "postcondition": "rehearsal() names the FR"},
                    {"title": f"Add {DEMO_TEST}", "postcondition": f"python3 {DEMO_TEST} exits 0"},
                ],
            }
        ),
    ]


def _demo_code(task: AgentTask) -> Sequence[Step]:
    fr_id = _fr_id(task)
    module = (
        f'"""Written by an opus rehearsal for {fr_id}."""\n\n\n'
        f"def rehearsal() -> str:\n    return {fr_id!r}\n"
    )
    test = (
        "from opus_rehearsal import rehearsal\n\n\n"
        f"def test_rehearsal():\n    assert rehearsal() == {fr_id!r}\n\n\n"
        'if __name__ == "__main__":\n    test_rehearsal()\n'
    )
    return [
        Write(DEMO_MODULE, module),
        Write(DEMO_TEST, test),
        Bash(f"python3 {DEMO_TEST}"),
        Submit({"summary": f"Added {DEMO_MODULE} and {DEMO_TEST} for {fr_id}."}),
    ]
