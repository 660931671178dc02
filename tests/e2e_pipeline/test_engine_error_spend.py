"""Budgets count every billed call: a stage that ends with an API error after some model
calls succeeded has spent their tokens, and the job's cost, the day's spend (what
`opus status` shows and the daily budget check reads) and a later retry say so, once."""

from __future__ import annotations

import pytest

from opus.config import AgentsConfig
from opus.daemon.breaker import CircuitBreaker
from opus.daemon.settle import Settler
from opus.daemon.workers import finished_from_dict, finished_to_dict, run_guarded
from opus.domain import JobState, Stage
from opus.engines.pricing import cost_usd
from opus.errors import EngineError
from opus.pipeline.context import JobControl
from opus.pipeline.executor import run_job
from opus.status import day_start, status_report
from opus.testing.clock import FakeClock
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import WORKER, Project, claim_fr, write_fr
from tests.standins.billing import billed_usage
from tests.standins.messages_api import MessagesAPI, reply, server_error, text, tool_use

MODEL = AgentsConfig().model


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

    spent = billed_usage(api.replies)
    assert spent.output_tokens == 70
    spent_usd = cost_usd(MODEL, spent, settings.agents.prices)
    assert spent_usd > 0
    [failed] = ctx.store.stage_runs(job.id)
    assert (failed.stage, failed.ok, failed.usage) == (Stage.PLAN, False, spent)
    assert failed.cost_usd == pytest.approx(spent_usd)
    assert "HTTP 500 after 1 retries" in str(failed.output["report"])
    assert ctx.store.get(job.id).cost_usd == pytest.approx(spent_usd)
    now = ctx.clock.now()
    assert ctx.store.cost_since(day_start(now)) == pytest.approx(spent_usd)
    assert status_report(ctx.store, settings, now).spent_today_usd == pytest.approx(spent_usd)

    # The retry runs the stage again from the start; it adds only what it spent itself.
    first_replies = len(api.replies)
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    again = ctx.store.claim(WORKER, 600)
    assert again is not None and again.id == job.id
    outcome = run_job(again, ctx, JobControl(job.id))
    assert outcome.kind == "awaiting_review", ctx.store.get(job.id).error

    retry_usd = cost_usd(MODEL, billed_usage(api.replies[first_replies:]), settings.agents.prices)
    runs = ctx.store.stage_runs(job.id)
    assert [r for r in runs if not r.ok] == [failed]
    assert sum(r.cost_usd for r in runs if r.ok) == pytest.approx(retry_usd)
    total = spent_usd + retry_usd
    assert ctx.store.get(job.id).cost_usd == pytest.approx(total)
    assert ctx.store.cost_since(day_start(ctx.clock.now())) == pytest.approx(total)
