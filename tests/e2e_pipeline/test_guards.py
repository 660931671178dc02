"""Before and while spending: readiness refuses without a model call, budgets stop a job
with a clear reason and keep the work done so far on the job's branch."""

from __future__ import annotations

from opus.domain import JobState, Stage
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import Project, run_fr, write_fr
from tests.standins.messages_api import MessagesAPI, Reply, reply, tool_use

# The budget tests script each reply's usage (100 in, 20 out: possible for any of these
# requests) so that, at the built-in claude-sonnet-4-6 prices, each one costs:
REPLY_USD = (100 * 3.0 + 20 * 15.0) / 1_000_000
REPLY_USAGE = {"input_tokens": 100, "output_tokens": 20}


def priced(*replies: Reply) -> list[Reply]:
    """`replies` with the usage above scripted into each one."""
    for one in replies:
        assert isinstance(one, dict)
        one["usage"] = dict(REPLY_USAGE)
    return list(replies)


def test_a_missing_base_branch_fails_before_any_model_call(
    api: MessagesAPI, project: Project
) -> None:
    run_git(project.repo, "branch", "release-1")
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    write_fr(project, "base: develop")

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "failed"
    assert run.job.state is JobState.FAILED
    assert api.requests == []
    error = run.job.error or ""
    assert "`develop` does not exist" in error
    assert "main, release-1" in error
    assert run.ctx.store.stage_runs(run.job.id) == []
    assert run.job.cost_usd == 0


def test_a_tiny_budget_stops_the_job_after_the_first_priced_stage(
    api: MessagesAPI, project: Project
) -> None:
    plan_in_one_call = [reply(tool_use("submit_plan", talk.PLAN))]
    api.add(*priced(*plan_in_one_call, *talk.good_coder(), *talk.approve()))
    write_fr(project, "budget: {usd: 0.0001}")

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "failed"
    job = run.job
    assert job.state is JobState.FAILED
    error = job.error or ""
    assert "budget" in error
    assert "$0.0006" in error and "$0.0001" in error  # not rounded away to $0.00
    assert [r.stage for r in run.ctx.store.stage_runs(job.id)] == [Stage.PLAN]
    assert len(api.requests) == 1  # the coder never started
    assert abs(job.cost_usd - REPLY_USD) < 1e-9


def test_budget_running_out_inside_a_stage_is_a_budget_error_and_is_accounted(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*priced(*talk.planner(), *talk.good_coder(), *talk.approve()))
    write_fr(project, "budget: {usd: 0.0001}")

    run = run_fr(project, project.settings())

    job = run.job
    assert job.state is JobState.FAILED
    error = job.error or ""
    assert "budget" in error and "submit_plan" not in error
    assert len(api.requests) == 1  # stopped before the second planner call
    assert abs(job.cost_usd - REPLY_USD) < 1e-9  # what was spent is on the job


def test_the_coders_work_is_kept_on_the_branch_when_the_budget_runs_out(
    api: MessagesAPI, project: Project
) -> None:
    plan_in_one_call = [reply(tool_use("submit_plan", talk.PLAN))]
    api.add(*priced(*plan_in_one_call, *talk.good_coder(), *talk.approve()))
    # Enough for the plan and one coder reply, not for the coder's second reply.
    write_fr(project, f"budget: {{usd: {REPLY_USD * 1.5}}}")

    run = run_fr(project, project.settings())

    job = run.job
    assert job.state is JobState.FAILED
    assert "budget" in (job.error or "")
    runs = run.ctx.store.stage_runs(job.id)
    assert [(r.stage, r.ok) for r in runs] == [(Stage.PLAN, True), (Stage.CODE, True)]
    assert len(talk.requests_of(api, "coder")) == 1
    branch = job.branch or ""
    # The one file the coder wrote is committed on the job's branch, with the trailer.
    assert "def sub(a, b)" in run_git(project.repo, "show", f"{branch}:calc.py")
    assert f"Opus-Job: {job.id}" in run_git(project.repo, "log", "-1", "--format=%B", branch)
    assert runs[1].commit == run_git(project.repo, "rev-parse", branch)
