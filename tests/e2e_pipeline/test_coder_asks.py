"""A coder allowed to ask (`agents.coder_can_ask`) asks mid-stage: its work so far is
committed, the job waits (no lease, nothing spent), and once answered the same code round
runs again on that work with the answer in its first message (real SDK, stand-in, git)."""

from __future__ import annotations

from pathlib import Path

from opus.conversation.waiting import answer, waiting_of
from opus.domain import JobState, Stage
from opus.pipeline.context import JobControl
from opus.pipeline.executor import run_job
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import WORKER, Project, claim_fr, write_fr
from tests.standins.messages_api import MessagesAPI, reply, text, tool_use

QUESTION = {"question": "Should sub accept floats?", "options": ["yes", "no"],
            "recommendation": "yes"}


def test_the_coder_asks_keeps_its_work_and_resumes_with_the_answer(
    api: MessagesAPI, project: Project
) -> None:
    settings = project.settings()
    settings = settings.model_copy(
        update={"agents": settings.agents.model_copy(update={"coder_can_ask": True})}
    )
    create = {"command": "create", "path": "calc.py", "file_text": talk.CALC_WITH_SUB}
    api.add(
        *talk.planner(),
        reply(tool_use(talk.EDITOR, create)),
        reply(text("One thing first."), tool_use("ask_human", {"questions": [QUESTION]})),
    )
    write_fr(project)
    job, ctx = claim_fr(settings)

    outcome = run_job(job, ctx, JobControl(job.id))

    assert outcome.kind == "waiting", outcome.detail
    job = ctx.store.get(job.id)
    assert job.state is JobState.WAITING_INPUT and job.worker is None
    waiting = waiting_of(job)
    assert waiting is not None and waiting.asked_by == "coder"
    assert (waiting.stage, waiting.iteration) == ("code", 1)
    asked = ctx.store.stage_runs(job.id)[-1]
    assert asked.stage is Stage.CODE and not asked.ok and asked.cost_usd > 0
    assert asked.commit and "def sub" in run_git(project.repo, "show", f"{asked.commit}:calc.py")
    assert ctx.store.claim(WORKER, 600) is None, "a waiting job is not claimable"

    answer(ctx.store, job, ["Yes: ints and floats alike."], ctx.clock)
    api.add(*talk.coder({"test_sub.py": talk.TEST_SUB}, "Added the test."), *talk.approve())
    again = ctx.store.claim(WORKER, 600)
    assert again is not None and again.id == job.id
    outcome = run_job(again, ctx, JobControl(job.id))

    assert outcome.kind == "awaiting_review", outcome.detail
    first = talk.first_messages(api, "coder")
    assert len(first) == 2 and "Yes: ints and floats alike." in first[1]
    assert "Should sub accept floats?" in first[1]
    done = ctx.store.get(job.id)
    assert done.iteration == 1
    assert "def sub" in project.remote_file(done.branch or "", "calc.py")
    assert "Yes: ints and floats alike." in Path(done.pr_url or "").read_text(encoding="utf-8")
