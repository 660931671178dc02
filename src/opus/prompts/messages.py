"""The first user message of each role, built from plain values (pure functions).

Every role's message starts with the feature request (id, title, body), so each agent
knows what is being built without relying on another agent's summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A diff larger than this is cut in the reviewer's message; the reviewer can read the
# whole change with `git diff` in bash.
MAX_DIFF_CHARS = 60_000
MAX_FEEDBACK_CHARS = 20_000


def fr_block(fr_id: str, title: str, body: str) -> str:
    """The feature request as the agents see it."""
    return f"# Feature request {fr_id}: {title}\n\n{body.strip() or '(no description)'}\n"


def format_plan(plan: Mapping[str, Any] | None) -> str:
    """A plan dict ({summary, steps: [{title, postcondition}]}) as numbered markdown."""
    if not plan:
        return "(no plan recorded)"
    lines = [str(plan.get("summary", "")).strip(), ""]
    for number, step in enumerate(plan.get("steps") or [], 1):
        if isinstance(step, Mapping):
            lines.append(f"{number}. {step.get('title', '')}")
            lines.append(f"   Done when: {step.get('postcondition', '')}")
        else:
            lines.append(f"{number}. {step}")
    return "\n".join(lines).strip()


def planner_message(fr_id: str, title: str, body: str, *, context: str = "") -> str:
    """The planner's first message; `context` holds a person's answers, assumptions and
    requested plan changes (`opus.pipeline.asking_context`)."""
    return (
        fr_block(fr_id, title, body)
        + (f"\n{context.strip()}\n" if context.strip() else "")
        + "\nRead the code in the worktree (your current directory), then call "
        "submit_plan with a concrete plan whose every step has a verifiable postcondition.\n"
    )


def coder_message(
    fr_id: str,
    title: str,
    body: str,
    *,
    plan: Mapping[str, Any] | None,
    iteration: int = 1,
    feedback: str | None = None,
    context: str = "",
) -> str:
    """The coder's first message; from iteration 2 on it carries what went wrong.
    `context` holds a person's answers to the questions asked so far."""
    parts = [fr_block(fr_id, title, body)]
    if context.strip():
        parts.append(context.strip() + "\n")
    parts.append("## Plan\n\n" + format_plan(plan) + "\n")
    if iteration >= 2:
        parts.append(
            f"## Round {iteration}: fix what the last round left\n\n"
            "The previous attempt is already in the worktree. It did not pass; the test "
            "failure or review comments follow. Address every point, run the tests again, "
            "and keep what already works.\n\n"
            + _cut(feedback or "(no report was recorded)", MAX_FEEDBACK_CHARS)
            + "\n"
        )
        parts.append("Fix the problems above, then end your turn with a short summary.\n")
    else:
        parts.append("Implement the plan, run the tests, then end your turn with a summary.\n")
    return "\n".join(parts)


def reviewer_message(
    fr_id: str,
    title: str,
    body: str,
    *,
    plan: Mapping[str, Any] | None,
    diff: str,
    test_summary: str,
) -> str:
    """The reviewer's first message: the FR, the plan, the diff and the test result."""
    return "\n".join(
        [
            fr_block(fr_id, title, body),
            "## Plan\n\n" + format_plan(plan) + "\n",
            "## Test result\n\n" + (test_summary.strip() or "(no test result)") + "\n",
            "## Diff against the base branch\n\n```diff\n"
            + (_cut(diff, MAX_DIFF_CHARS) or "(empty diff: nothing changed)")
            + "\n```\n",
            "Review the change against the feature request and the plan, then call "
            "submit_review.\n",
        ]
    )


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return text[:limit] + f"\n[... {cut} more characters cut; use bash (git diff) to see all]"
