"""Checks shared by the tests that a stage cut short (an API error, its wall time, a stop)
keeps what its billed calls spent: recorded once as a failed stage run, in the job's and
the day's spend, and a later run of the stage adding only its own."""

from __future__ import annotations

import pytest

from opus.config import AgentsConfig
from opus.domain import Job, Stage, StageRun
from opus.engines.pricing import cost_usd
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import run_job
from opus.status import day_start, status_report
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import WORKER
from tests.standins.billing import billed_usage
from tests.standins.messages_api import MessagesAPI

MODEL = AgentsConfig().model


def planner_spent_once(
    api: MessagesAPI, ctx: PipelineContext, job: Job, output_tokens: int, report: str
) -> StageRun:
    """Every reply so far is in one failed planner run, in the job's and the day's spend."""
    spent = billed_usage(api.replies)
    assert spent.output_tokens == output_tokens
    spent_usd = cost_usd(MODEL, spent, ctx.settings.agents.prices)
    assert spent_usd > 0
    [failed] = ctx.store.stage_runs(job.id)
    assert (failed.stage, failed.ok, failed.usage) == (Stage.PLAN, False, spent)
    assert failed.cost_usd == pytest.approx(spent_usd)
    assert report in str(failed.output["report"])
    assert ctx.store.get(job.id).cost_usd == pytest.approx(spent_usd)
    now = ctx.clock.now()
    assert ctx.store.cost_since(day_start(now)) == pytest.approx(spent_usd)
    assert status_report(ctx.store, ctx.settings, now).spent_today_usd == pytest.approx(
        spent_usd
    )
    return failed


def rerun_adds_only_its_own(api: MessagesAPI, ctx: PipelineContext, failed: StageRun) -> None:
    """The queued job is claimed again and runs from the planner to its PR: the job's cost
    and the day's spend grow only by what this run spent."""
    first_replies = len(api.replies)
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    again = ctx.store.claim(WORKER, 600)
    assert again is not None and again.id == failed.job_id
    outcome = run_job(again, ctx, JobControl(again.id))
    assert outcome.kind == "awaiting_review", ctx.store.get(again.id).error

    rerun = billed_usage(api.replies[first_replies:])
    rerun_usd = cost_usd(MODEL, rerun, ctx.settings.agents.prices)
    runs = ctx.store.stage_runs(again.id)
    assert [r for r in runs if not r.ok] == [failed]
    assert sum(r.cost_usd for r in runs if r.ok) == pytest.approx(rerun_usd)
    total = failed.cost_usd + rerun_usd
    assert ctx.store.get(again.id).cost_usd == pytest.approx(total)
    assert ctx.store.cost_since(day_start(ctx.clock.now())) == pytest.approx(total)
