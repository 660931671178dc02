"""`next_step`, the pure core of resume: checkpoints in, the next step out."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opus.domain import Stage, StageRun
from opus.pipeline.progress import (
    Exhausted,
    Finished,
    Step,
    next_step,
    review_report,
)
from opus.pipeline.progress import test_report as report_of_test

FAILED_TEST = {
    "command": "pytest -q", "passed": False, "exit_code": 1, "output_tail": "E assert 3 == 2",
}
PASSED_TEST = {"command": "pytest -q", "passed": True, "exit_code": 0, "output_tail": "1 passed"}
CHANGES = {
    "verdict": "request_changes",
    "summary": "Needs a docstring.",
    "comments": [{"path": "calc.py", "line": 4, "body": "document sub"}, {"body": "and README"}],
}
APPROVED = {"verdict": "approve", "summary": "ok", "comments": []}


def run(stage: Stage, iteration: int, output: dict[str, Any] | None = None, *, ok: bool = True
        ) -> StageRun:
    return StageRun(job_id=1, stage=stage, iteration=iteration, ok=ok, output=output or {})


def round_(i: int, test: dict[str, Any], review: dict[str, Any] | None = None) -> list[StageRun]:
    runs = [run(Stage.CODE, i), run(Stage.TEST, i, test)]
    return runs + ([run(Stage.REVIEW, i, review)] if review is not None else [])


PLAN = run(Stage.PLAN, 0, {"summary": "s", "steps": []})


def test_a_new_job_starts_with_the_plan() -> None:
    assert next_step([], 3) == Step(Stage.PLAN, 0)


def test_failed_runs_are_not_checkpoints() -> None:
    assert next_step([run(Stage.PLAN, 0, ok=False)], 3) == Step(Stage.PLAN, 0)
    runs = [PLAN, run(Stage.CODE, 1, ok=False)]
    assert next_step(runs, 3) == Step(Stage.CODE, 1)


def test_the_happy_path_in_order() -> None:
    assert next_step([PLAN], 3) == Step(Stage.CODE, 1)
    assert next_step([PLAN, run(Stage.CODE, 1)], 3) == Step(Stage.TEST, 1)
    assert next_step([PLAN, *round_(1, PASSED_TEST)], 3) == Step(Stage.REVIEW, 1)
    assert next_step([PLAN, *round_(1, PASSED_TEST, APPROVED)], 3) == Step(Stage.DELIVER, 1)
    delivered = [PLAN, *round_(1, PASSED_TEST, APPROVED), run(Stage.DELIVER, 1)]
    assert next_step(delivered, 3) == Finished(1)


def test_a_failed_test_sends_its_report_to_the_next_coder_round() -> None:
    step = next_step([PLAN, *round_(1, FAILED_TEST)], 3)
    assert isinstance(step, Step)
    assert (step.stage, step.iteration) == (Stage.CODE, 2)
    assert step.feedback == report_of_test(FAILED_TEST)
    assert "E assert 3 == 2" in step.feedback and "Exit code: 1" in step.feedback


def test_requested_changes_send_the_comments_to_the_next_coder_round() -> None:
    step = next_step([PLAN, *round_(1, PASSED_TEST, CHANGES)], 3)
    assert isinstance(step, Step) and step.iteration == 2
    assert step.feedback == review_report(CHANGES)
    assert "calc.py:4: document sub" in step.feedback
    assert "general: and README" in step.feedback


def test_the_last_round_failing_exhausts_the_job_with_its_report() -> None:
    runs = [PLAN, *round_(1, FAILED_TEST), *round_(2, FAILED_TEST), *round_(3, FAILED_TEST)]
    assert next_step(runs, 3) == Exhausted(3, report_of_test(FAILED_TEST))
    assert next_step(runs, 4) == Step(Stage.CODE, 4, feedback=report_of_test(FAILED_TEST))


def test_a_timed_out_test_says_so() -> None:
    assert report_of_test({**FAILED_TEST, "timed_out": True}).startswith("The tests timed out.")


def test_round_feedback_reopens_a_delivered_job_at_the_next_round() -> None:
    delivered = [PLAN, *round_(1, PASSED_TEST, APPROVED), run(Stage.DELIVER, 1)]
    assert next_step(delivered, 3, round_feedback="rename sub") == Step(
        Stage.CODE, 2, feedback="rename sub"
    )
    # The round cap still holds for a human's request.
    assert next_step(delivered, 1, round_feedback="rename sub") == Exhausted(1, "rename sub")
    # Feedback only matters once delivered; before that it is the pipeline's own loop.
    assert next_step([PLAN], 3, round_feedback="x") == Step(Stage.CODE, 1)


OUTCOMES = st.sampled_from(["pass", "fail", "changes"])


def _history(outcomes: list[str]) -> list[StageRun]:
    """The checkpoints of rounds with these outcomes; an approved round is delivered."""
    runs = [PLAN]
    for i, outcome in enumerate(outcomes, 1):
        if outcome == "fail":
            runs += round_(i, FAILED_TEST)
        elif outcome == "changes":
            runs += round_(i, PASSED_TEST, CHANGES)
        else:
            return [*runs, *round_(i, PASSED_TEST, APPROVED), run(Stage.DELIVER, i)]
    return runs


@settings(derandomize=True, database=None)  # the same examples every run
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=6), cap=st.integers(1, 6))
def test_resuming_never_names_a_completed_stage_again(outcomes: list[str], cap: int) -> None:
    """Replaying any history checkpoint by checkpoint: each step is the one recorded next,
    so a crash after any checkpoint resumes exactly where the work stopped."""
    runs = _history(outcomes)
    for done in range(len(runs) + 1):
        step = next_step(runs[:done], cap)
        if done == len(runs) or runs[done].iteration > cap:
            # Past the recorded history: delivered, out of rounds, or the next round.
            last = runs[done - 1]
            if last.stage is Stage.DELIVER:
                assert step == Finished(last.iteration)
            elif last.iteration >= cap:
                assert isinstance(step, Exhausted) and step.iteration == last.iteration
            else:
                assert isinstance(step, Step) and step.stage is Stage.CODE
            return
        following = runs[done]
        assert isinstance(step, Step)
        assert (step.stage, step.iteration) == (following.stage, following.iteration)
        assert (step.stage, step.iteration) not in {(r.stage, r.iteration) for r in runs[:done]}
