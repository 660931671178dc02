"""Budgets count every billed call: a stage that ends with an API error after some model
calls succeeded has spent their tokens, and the job's cost, the day's spend (what
`opus status` shows and the daily budget check reads) and a later retry say so, once."""

from __future__ import annotations

from opus.config import AgentsConfig
from opus.daemon.breaker import CircuitBreaker
from opus.daemon.settle import Settler
from opus.daemon.workers import finished_from_dict, finished_to_dict, run_guarded
from opus.domain import JobState
from opus.errors import EngineError
from opus.pipeline.context import JobControl
from opus.testing.clock import FakeClock
from tests.e2e_pipeline.harness import WORKER, Project, claim_fr, write_fr
from tests.e2e_pipeline.spend import planner_spent_once, rerun_adds_only_its_own
from tests.standins.messages_api import MessagesAPI, reply, server_error, text, tool_use


def test_a_stage_ended_by_an_api_error_counts_what_it_spent_once(
    api: MessagesAPI, project: Project
) -> None:
    # The planner's first two calls are answered (and billed); the third gets 500 from
    # the first try and from the SDK's one retry.
    api.add(
        reply(text("Looking."), tool_use("bash", {"command": "ls"}), usage={"output_tokens": 30}),
        reply(tool_use("bash", {"command": "cat calc.py"}), usage={"output_tokens": 40}),
        server_error(), server_error(),
    )  # fmt: skip
    write_fr(project)
    settings = project.settings()
    settings = settings.model_copy(update={"agents": AgentsConfig(max_retries=1)})
    job, ctx = claim_fr(settings)

    # As a job process runs it; the error crosses to the daemon as plain data.
    finished = run_guarded(job, ctx, JobControl(job.id))
    assert isinstance(finished.error, EngineError)
    assert len(api.requests) == 4
    back = finished_from_dict(job, finished_to_dict(finished))
    Settler(ctx, CircuitBreaker(failures=5, cooldown_s=600, clock=FakeClock()), WORKER)(back)
    assert ctx.store.get(job.id).state is JobState.QUEUED

    failed = planner_spent_once(api, ctx, job, 70, "HTTP 500 after 1 retries")
    # The retry runs the stage again from the start; it adds only what it spent itself.
    rerun_adds_only_its_own(api, ctx, failed)
