"""What every engine shares: the failure that keeps its partial result, and report texts."""

from __future__ import annotations

from typing import Any

from opus.domain import Role
from opus.errors import StageFailed
from opus.seams import AgentResult, AgentTask, StopReason

# A one-line activity message longer than this is cut; it goes into logs and liveness.
ACTIVITY_CHARS = 160
SUMMARY_CHARS = 4000
SCRATCH_DIR = ".opus-agent"
"""A headless engine's files in the worktree (the one place the sandbox lets it write),
removed when its run ends so they are never committed."""


class AgentFailed(StageFailed):
    """The agent ran but ended without the output its role must produce.

    `partial` holds what was spent (usage, cost, turns) so the caller can still account
    for it; the message says what happened and what to try.
    """

    def __init__(self, message: str, partial: AgentResult) -> None:
        super().__init__(message)
        self.partial = partial


def stopped(
    task: AgentTask,
    reason: StopReason,
    detail: str,
    *,
    summary: str = "",
    **spent: Any,
) -> AgentResult:
    """A result for a run ended by a cap or a guard; says that the work so far is kept.

    `spent` is the usage, cost_usd and turns so far; `summary` the coder's last words.
    """
    report = (
        f"The {task.role} stopped early: {detail} The work done so far is kept in the "
        f"worktree {task.worktree}."
    )
    output: dict[str, Any] = {"summary": summary or report} if task.role is Role.CODER else {}
    return AgentResult(stop_reason=reason, output=output, report=report, **spent)


def one_line(text: str, limit: int = ACTIVITY_CHARS) -> str:
    """`text` squeezed onto one line and cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tail(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The last `limit` characters of `text`, stripped."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
