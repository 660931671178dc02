"""A model that refuses, or a conversation that fills the context window, fails the job with
a reason a person can act on; the coder's bash state carries over within its stage."""

from __future__ import annotations

from opus.domain import JobState, Stage
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import Project, run_fr, write_fr
from tests.standins.messages_api import (
    MessagesAPI,
    context_window_exceeded,
    refusal,
    reply,
    text,
    tool_use,
)


def test_a_refusing_coder_fails_the_job_saying_so(api: MessagesAPI, project: Project) -> None:
    api.add(*talk.planner(), refusal("I can't help with that."))
    write_fr(project)

    run = run_fr(project, project.settings())

    assert run.job.state is JobState.FAILED
    error = run.job.error or ""
    assert "declined to continue (stop_reason refusal)" in error
    assert "I can't help with that." in error and "opus retry" in error
    assert [r.stage for r in run.ctx.store.stage_runs(run.job.id) if r.ok] == [Stage.PLAN]
    assert run.job.cost_usd > 0, "what the refusal cost is on the job"


def test_a_full_context_window_fails_the_job(api: MessagesAPI, project: Project) -> None:
    api.add(*talk.planner(), reply(tool_use("bash", {"command": "ls"})), context_window_exceeded())
    write_fr(project)

    run = run_fr(project, project.settings())

    assert run.job.state is JobState.FAILED
    assert "filled the context window" in (run.job.error or "")


def test_the_coders_shell_keeps_its_directory_and_variables(
    api: MessagesAPI, project: Project
) -> None:
    session = [
        reply(tool_use("bash", {"command": "mkdir -p pkg && cd pkg && export SUFFIX=ok"})),
        reply(tool_use("bash", {"command": 'printf "%s\\n" "$SUFFIX" > marker.txt; pwd'})),
        reply(text("Wrote pkg/marker.txt.")),
    ]
    api.add(*talk.planner(), *session, *talk.approve())
    write_fr(project, "test_command: test -f pkg/marker.txt")

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "awaiting_review", run.job.error
    assert project.remote_file(run.job.branch or "", "pkg/marker.txt").strip() == "ok"
