"""The human gate, as pure functions: what a PR's feedback means for the job, and the
"what changed" comment opus posts after pushing a new round. The daemon polls and acts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from opus.seams import PRFeedback, ReviewComment

Decision = Literal["wait", "done", "cancelled", "new_round"]
MAX_LISTED = 20


def decide(feedback: PRFeedback) -> Decision:
    """merged → done; closed unmerged → cancelled; changes requested → new_round; else wait."""
    if feedback.state == "merged":
        return "done"
    if feedback.state == "closed":
        return "cancelled"
    return "new_round" if feedback.changes_requested else "wait"


def render_round_comment(
    round_no: int,
    *,
    summary: str,
    commits: Sequence[str] = (),
    addressed: Sequence[ReviewComment] = (),
    test_summary: str = "",
    reason: str = "",
) -> str:
    """The comment after round `round_no`'s commits are pushed: why the round ran
    (`reason`: failing CI, a conflict), what changed (the coder's summary, commit
    subjects), and the new test result."""
    lines = [f"### opus — round {round_no}", ""]
    if reason:
        lines += [f"Fixes: {reason}", ""]
    lines.append(summary.strip() or "New commits pushed.")
    if addressed:
        lines += ["", "Review comments addressed:"]
        lines += [f"- {_where(c)}{_first_line(c.body)}" for c in addressed[:MAX_LISTED]]
    if commits:
        lines += ["", "Commits:"]
        lines += [f"- {subject}" for subject in commits[:MAX_LISTED]]
    if test_summary:
        lines += ["", f"Tests: {test_summary}"]
    return "\n".join(lines) + "\n"


def _where(comment: ReviewComment) -> str:
    if not comment.path:
        return ""
    return f"`{comment.path}:{comment.line}` " if comment.line else f"`{comment.path}` "


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 120 else first[:117] + "..."
