"""A new job for an FR whose earlier job failed or was cancelled starts from `base`:
opus's own branch is taken back (the push replaces it with --force-with-lease), unless
an open PR uses it — then the new job gets a new branch. The coder's summaries carry
patch dividers, sign-offs and `key: value` lines, and opus still knows its commits."""

from __future__ import annotations

from pathlib import Path

from opus.daemon.runtime import build_runtime
from opus.domain import JobState
from opus.pipeline.context import JobControl
from opus.pipeline.executor import run_job
from opus.pipeline.worktree import remove_worktree_at
from opus.vault import scan_vault
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline.harness import FR_ID, WORKER, Project, run_fr, write_fr
from tests.standins.messages_api import MessagesAPI

TRICKY = (
    "Added sub and its test.\n\n---\nSigned-off-by: Coder <coder@example.com>\n"
    "key: value\nreviewed-by: nobody\n"
)


def _first_job(api: MessagesAPI, project: Project) -> tuple[int, str]:
    api.add(
        *talk.planner(),
        *talk.coder({"calc.py": talk.CALC_WITH_SUB, "test_sub.py": talk.TEST_SUB}, TRICKY),
        *talk.approve(),
    )  # fmt: skip
    write_fr(project)
    run = run_fr(project, project.settings())
    assert run.outcome.kind == "awaiting_review", run.job.error
    branch = run.job.branch or ""
    # Cancelled: the human closed it. Its worktree went with it (as settle does).
    run.ctx.store.transition(run.job.id, JobState.CANCELLED)
    remove_worktree_at(project.repo, project.state_dir / "worktrees" / f"job-{run.job.id}")
    return run.job.id, branch


def _second_job(api: MessagesAPI, project: Project) -> tuple[int, str, str]:
    api.add(
        *talk.planner(),
        *talk.coder({"calc.py": talk.CALC_WITH_DOCUMENTED_SUB, "test_sub.py": talk.TEST_SUB},
                    TRICKY),
        *talk.approve(),
    )  # fmt: skip
    note = write_fr(project)
    note.write_text(note.read_text() + "\nDocument it too.\n")  # re-planned: new content
    settings = project.settings()
    ctx = build_runtime(settings).ctx
    (fr,) = [fr for fr in scan_vault(settings.vault_path, default_repo=project.repo).valid
             if fr.id == FR_ID]
    ctx.store.enqueue(fr, project.repo)
    job = ctx.store.claim(WORKER, 600)
    assert job is not None
    outcome = run_job(job, ctx, JobControl(job.id))
    after = ctx.store.get(job.id)
    assert outcome.kind == "awaiting_review", after.error
    return after.id, after.branch or "", after.pr_url or ""


def _trailers(project: Project, branch: str) -> list[str]:
    out = run_git(project.remote, "log", "--format=%(trailers:key=Opus-Job,valueonly)",
                  f"main..{branch}")
    return [line for line in out.splitlines() if line]


def test_a_new_attempt_takes_its_own_branch_back_and_starts_from_base(
    api: MessagesAPI, project: Project
) -> None:
    first, branch = _first_job(api, project)
    (pr_note,) = list((project.vault / "10_features" / "05_review").glob("PR-*.md"))
    pr_note.unlink()  # no open PR uses the branch any more

    second, second_branch, _ = _second_job(api, project)

    assert second_branch == branch
    # Only the new job's commits: the old attempt's were replaced (force-with-lease),
    # which the push guard allowed because it recognised them as opus's own.
    assert _trailers(project, branch) == [str(second)]
    assert first != second
    assert '"""a - b."""' in project.remote_file(branch, "calc.py")


def test_a_branch_an_open_pr_uses_is_left_alone(api: MessagesAPI, project: Project) -> None:
    first, branch = _first_job(api, project)

    second, second_branch, pr_url = _second_job(api, project)

    assert second_branch == f"{branch}-2"
    assert _trailers(project, branch) == [str(first)]
    assert _trailers(project, second_branch) == [str(second)]
    assert pr_url.endswith(".md") and Path(pr_url).is_file()
