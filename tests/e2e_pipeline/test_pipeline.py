"""Issue 3 end to end: the real `anthropic` SDK against the stand-in, real git, bwrap,
a SQLite registry file and the local forge, one FR at a time (in process)."""

from __future__ import annotations

import hashlib

from opus.domain import JobState, Stage
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import Project, run_fr, write_fr
from tests.standins.messages_api import MessagesAPI, last_tool_results, tool_result_text

AGENT_OF = {Stage.PLAN: "planner", Stage.CODE: "coder", Stage.REVIEW: "reviewer"}


def test_a_passing_fr_is_planned_coded_tested_reviewed_and_delivered(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    write_fr(project)
    override = project.vault / "00_system" / "prompts" / "reviewer.md"
    override.parent.mkdir(parents=True)
    override.write_text("You review code for the calc project. Be strict.\n")

    run = run_fr(project, project.settings())

    job = run.job
    assert run.outcome.kind == "awaiting_review", run.outcome.detail
    assert job.state is JobState.AWAITING_REVIEW
    assert job.branch == "opus/fr-7-add-subtraction"
    runs = run.ctx.store.stage_runs(job.id)
    assert [(r.stage, r.iteration) for r in runs] == [
        (Stage.PLAN, 0), (Stage.CODE, 1), (Stage.TEST, 1), (Stage.REVIEW, 1), (Stage.DELIVER, 1)
    ]
    assert all(r.ok for r in runs)
    # The planner's `ls` ran in the worktree and its output went back to the model.
    assert "calc.py" in tool_result_text(last_tool_results(talk.requests_of(api, "planner")[1])[0])
    # Agent stages carry the prompt hash, usage and cost; the tester ran for real.
    for r in runs:
        role = AGENT_OF.get(r.stage)
        if role is not None:
            sent = talk.requests_of(api, role)[0]["system"][0]["text"]
            assert r.prompt_sha256 == _sha(sent)
            assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
            assert r.cost_usd > 0
    # The coder's bash ran in the worktree where its editor had just written the files.
    coder_runs = talk.requests_of(api, "coder")
    assert "sub ok" in tool_result_text(last_tool_results(coder_runs[-1])[0])
    # The reviewer was shown the diff.
    assert "+def sub(a, b):" in talk.first_messages(api, "reviewer")[0]
    # The vault's prompt file replaced the shipped reviewer prompt.
    assert talk.requests_of(api, "reviewer")[0]["system"][0]["text"] == override.read_text()
    # Every role's first message carries the FR's id, title and body.
    for role in AGENT_OF.values():
        (first,) = talk.first_messages(api, role)
        assert "FR-7" in first and "Add subtraction" in first and "`sub(a, b)`" in first
    test = runs[2].output
    assert test["passed"] is True and test["exit_code"] == 0
    assert "sub ok" in test["output_tail"]
    assert job.cost_usd == sum(r.cost_usd for r in runs) > 0
    # The branch is on the remote, with opus's commits carrying the trailer.
    log = project.branch_log(job.branch)
    assert f"Opus-Job: {job.id}" in log
    authors = run_git(project.remote, "log", "--format=%an <%ae>", f"main..{job.branch}")
    assert set(authors.splitlines()) == {"opus <opus@localhost>"}
    assert "def sub(a, b)" in project.remote_file(job.branch, "calc.py")
    # The local forge wrote the PR note, with the plan, the test result and the review.
    assert job.pr_url is not None
    note = (project.vault / "10_features" / "05_review").glob("PR-FR-7-*.md")
    (pr_note,) = list(note)
    assert str(pr_note) == job.pr_url
    body = pr_note.read_text()
    for expected in ("Add sub to calc.py", "`python3 test_sub.py` passed", "Looks right"):
        assert expected in body


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_review_asks_for_changes_once_then_approves(api: MessagesAPI, project: Project) -> None:
    comment = {"path": "calc.py", "line": 5, "body": "Add a docstring to sub."}
    api.add(
        *talk.planner(),
        *talk.good_coder(),
        *talk.request_changes("sub needs a docstring.", [comment]),
        *talk.coder({"calc.py": talk.CALC_WITH_DOCUMENTED_SUB}, "Documented sub."),
        *talk.approve(),
    )
    write_fr(project)

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "awaiting_review", run.outcome.detail
    runs = run.ctx.store.stage_runs(run.job.id)
    assert [r.iteration for r in runs if r.stage is Stage.CODE] == [1, 2]
    assert [r.output["verdict"] for r in runs if r.stage is Stage.REVIEW] == [
        "request_changes", "approve"
    ]
    first, second = talk.first_messages(api, "coder")
    assert "Add a docstring to sub." not in first
    assert "sub needs a docstring." in second
    assert "calc.py:5: Add a docstring to sub." in second
    assert '"""a - b."""' in project.remote_file(run.job.branch or "", "calc.py")
    assert len(talk.requests_of(api, "planner")) == 2  # planned once: ls, then submit


def test_tests_failing_every_round_fail_the_job_after_max_iterations(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*talk.planner(), *talk.bad_coder(), *talk.bad_coder(), *talk.bad_coder())
    write_fr(project)

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "failed"
    job = run.job
    assert job.state is JobState.FAILED
    runs = run.ctx.store.stage_runs(job.id)
    assert [(r.stage, r.iteration) for r in runs if r.stage is not Stage.PLAN] == [
        (Stage.CODE, 1), (Stage.TEST, 1), (Stage.CODE, 2), (Stage.TEST, 2),
        (Stage.CODE, 3), (Stage.TEST, 3),
    ]
    assert not any(r.stage in (Stage.REVIEW, Stage.DELIVER) for r in runs)
    assert job.error is not None
    assert "after 3 iteration(s)" in job.error
    assert "sub(5, 3) returned 8, expected 2" in job.error
    assert "python3 test_sub.py" in job.error
    rounds = talk.first_messages(api, "coder")
    assert len(rounds) == 3
    assert "returned 8" not in rounds[0]
    for later in rounds[1:]:
        assert "The tests failed." in later
        assert "sub(5, 3) returned 8, expected 2" in later
    assert not api.script  # every scripted reply was used: no extra model call
