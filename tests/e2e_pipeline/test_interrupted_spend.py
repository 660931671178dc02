"""Budgets count every billed call: a stage that is interrupted after its agent made
model calls (its wall time ran out, or a stop was asked for while it ran) has spent their
tokens, and the job's cost, the day's spend and a later re-run of the stage say so, once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from opus.config import PipelineConfig, Settings
from opus.daemon.runtime import build_runtime
from opus.domain import Job
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import Outcome, run_job
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import WORKER, Project, claim_fr, write_fr
from tests.e2e_pipeline.spend import planner_spent_once, rerun_adds_only_its_own
from tests.standins.messages_api import MessagesAPI, reply, text, tool_use

STAGE_TIMEOUT_S = 1.0


def _looking(output_tokens: int) -> dict[str, Any]:
    usage = {"output_tokens": output_tokens}
    return reply(text("Looking."), tool_use("bash", {"command": "ls"}), usage=usage)


def _submitting(output_tokens: int) -> dict[str, Any]:
    return reply(tool_use("submit_plan", talk.PLAN), usage={"output_tokens": output_tokens})


def test_a_stage_past_its_wall_time_counts_what_it_spent_once(
    api: MessagesAPI, project: Project
) -> None:
    def slow(body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(STAGE_TIMEOUT_S + 0.3)  # answered, but past the stage's wall time
        return _looking(40)

    api.add(_looking(30), slow)
    write_fr(project)
    settings = project.settings()
    pipeline = PipelineConfig(max_iterations=3, stage_timeout_s=STAGE_TIMEOUT_S)
    job, ctx = claim_fr(settings.model_copy(update={"pipeline": pipeline}))

    outcome = run_job(job, ctx, JobControl(job.id))
    assert outcome.kind == "stopped", outcome
    assert "ran past pipeline.stage_timeout_s" in outcome.detail
    _spent_once_then_rerun(api, ctx, job, "stuck: planner ran past", settings)


@pytest.mark.parametrize(
    ("second", "report"),
    [
        # The agent is stopped at its next turn: the planner never submits.
        (_looking, "planner stopped: cancelled"),
        # The planner submits, but the cancel came while the stage ran: the plan is dropped.
        (_submitting, "stage plan stopped: cancelled"),
    ],
)
def test_a_stage_stopped_while_it_ran_counts_what_it_spent_once(
    api: MessagesAPI,
    project: Project,
    second: Callable[[int], dict[str, Any]],
    report: str,
) -> None:
    write_fr(project)
    settings = project.settings()
    job, ctx = claim_fr(settings)
    control = JobControl(job.id)

    def cancelled(body: dict[str, Any]) -> dict[str, Any]:
        control.request_stop("cancelled")  # as `opus cancel` does while the model answers
        return second(40)

    api.add(_looking(30), cancelled)
    assert run_job(job, ctx, control) == Outcome("stopped", "cancelled")
    _spent_once_then_rerun(api, ctx, job, report, settings)


def _spent_once_then_rerun(
    api: MessagesAPI, ctx: PipelineContext, job: Job, report: str, settings: Settings
) -> None:
    """The two answered calls are counted once; the job, put back and claimed again by a
    fresh job process (with `settings`' usual stage time), adds only what its re-run spent."""
    assert len(api.replies) == 2
    failed = planner_spent_once(api, ctx, job, 70, report)
    assert ctx.store.release(job.id, WORKER)
    rerun_adds_only_its_own(api, build_runtime(settings).ctx, failed)
