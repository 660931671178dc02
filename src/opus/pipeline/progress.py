"""Where a job stands: the pure core of resume.

The checkpoints of a job (its completed stage runs, in the order they were recorded)
fully determine the next step. A crash loses at most the stage that was running, which
`next_step` then names again; a completed stage is never named twice.

    plan → code(1) → test(1) ─pass→ review(1) ─approve→ deliver(1)
                        │fail            │request_changes
                        └──→ code(2) ←───┘   … up to max_iterations, then failed

A human asking for changes on the PR, failing CI or a conflict with a moved base reopens
the job at the next round (code → test → review → deliver again on the same branch); the
round cap still holds. A round whose code is a clean merge of the moved base
(`merge_only`, no agent) goes test → deliver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opus.domain import Stage, StageRun


@dataclass(frozen=True)
class Step:
    """Run `stage` for round `iteration` (0 for plan)."""

    stage: Stage
    iteration: int
    feedback: str = ""
    """For a code step after round 1: the failure report or review comments."""


@dataclass(frozen=True)
class Finished:
    """Every stage is done: the branch is delivered."""

    iteration: int


@dataclass(frozen=True)
class Exhausted:
    """The last round failed and no round is left."""

    iteration: int
    report: str


Progress = Step | Finished | Exhausted


def next_step(
    runs: Sequence[StageRun],
    max_iterations: int,
    *,
    round_feedback: str | None = None,
) -> Progress:
    """The next thing to do, given the completed checkpoints in recorded order.

    `round_feedback` is set when the delivered PR asks for another round (a human's
    review, failing CI, a conflict with a moved base): what the coder is told.
    """
    done = [run for run in runs if run.ok]
    if not done:
        return Step(Stage.PLAN, 0)
    last = done[-1]
    if last.stage is Stage.DELIVER and round_feedback is not None:
        return _next_round(last.iteration, max_iterations, round_feedback)
    return _after(last, max_iterations, merge_only=_merge_only(done, last.iteration))


def _merge_only(done: Sequence[StageRun], iteration: int) -> bool:
    """Whether round `iteration`'s code was a clean merge of a moved base (no agent):
    its tests still run, but there is nothing for a reviewer to read."""
    code = [run for run in done if run.stage is Stage.CODE and run.iteration == iteration]
    return bool(code and code[-1].output.get("merge_only"))


def _after(last: StageRun, max_iterations: int, *, merge_only: bool = False) -> Progress:
    i = last.iteration
    match last.stage:
        case Stage.PLAN:
            return Step(Stage.CODE, 1)
        case Stage.CODE:
            return Step(Stage.TEST, i)
        case Stage.TEST:
            if last.output.get("passed"):
                return Step(Stage.DELIVER if merge_only else Stage.REVIEW, i)
            return _next_round(i, max_iterations, test_report(last.output))
        case Stage.REVIEW:
            if last.output.get("verdict") == "approve":
                return Step(Stage.DELIVER, i)
            return _next_round(i, max_iterations, review_report(last.output))
        case Stage.DELIVER:
            return Finished(i)
    raise AssertionError(f"unknown stage {last.stage!r}")  # pragma: no cover


def _next_round(i: int, max_iterations: int, report: str) -> Progress:
    if i >= max_iterations:
        return Exhausted(i, report)
    return Step(Stage.CODE, i + 1, feedback=report)


def test_report(output: Mapping[str, Any]) -> str:
    """What the coder is told after a failed test run."""
    head = "The tests timed out." if output.get("timed_out") else "The tests failed."
    return (
        f"{head}\nCommand: {output.get('command')}\nExit code: {output.get('exit_code')}\n"
        f"Output (tail):\n{output.get('output_tail', '')}"
    )


def review_report(output: Mapping[str, Any]) -> str:
    """What the coder is told after a review that requested changes."""
    lines = [f"The reviewer requested changes: {output.get('summary', '')}"]
    for comment in output.get("comments") or []:
        where = str(comment.get("path") or "general")
        if comment.get("line"):
            where += f":{comment['line']}"
        lines.append(f"- {where}: {comment.get('body', '')}")
    return "\n".join(lines)
