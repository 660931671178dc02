"""No silent waste: a coder that loops, or uses all its turns, is stopped with a report
that says so, and what it wrote is kept, committed, and carried on through the pipeline."""

from __future__ import annotations

from opus.domain import JobState, Stage
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import Project, Run, run_fr, write_fr
from tests.standins.messages_api import MessagesAPI, Reply, reply, tool_use

FILES = {"calc.py": talk.CALC_WITH_SUB, "test_sub.py": talk.TEST_SUB}


def _writes() -> list[Reply]:
    return talk.coder(FILES)[:-1]  # the editor calls, without the closing summary


def _assert_kept_and_delivered(run: Run, project: Project) -> dict[str, object]:
    assert run.job.state is JobState.AWAITING_REVIEW, run.job.error
    code = next(r for r in run.ctx.store.stage_runs(run.job.id) if r.stage is Stage.CODE)
    branch = run.job.branch or ""
    assert run_git(project.repo, "show", f"{code.commit}:calc.py") == FILES["calc.py"].rstrip()
    assert "def sub(a, b)" in project.remote_file(branch, "calc.py")
    return code.output


def test_a_coder_repeating_itself_is_stopped_and_its_work_kept(
    api: MessagesAPI, project: Project
) -> None:
    ls = [reply(tool_use("bash", {"command": "ls"})) for _ in range(4)]
    api.add(*talk.planner(), *_writes(), *ls, *talk.approve())
    write_fr(project)

    run = run_fr(project, project.settings())

    output = _assert_kept_and_delivered(run, project)
    assert output["stop_reason"] == "loop"
    assert "4 times in a row" in str(output["report"])
    # The fourth identical call was not run and no fifth reply was asked for.
    assert len(talk.requests_of(api, "coder")) == 2 + 4
    assert not api.script


def test_a_coder_out_of_turns_is_stopped_and_its_work_kept(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*talk.planner(), *_writes(), *talk.approve())
    write_fr(project)

    run = run_fr(project, project.settings(max_turns=2))

    output = _assert_kept_and_delivered(run, project)
    assert output["stop_reason"] == "max_turns"
    assert "all 2 turns (pipeline.max_turns)" in str(output["report"])
    assert len(talk.requests_of(api, "coder")) == 2
    assert not api.script
