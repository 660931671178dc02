"""A repo with no remote: the local provider delivers without pushing; a forge provider
refuses at readiness, before any token; a fault no retry can heal fails the job at once
instead of feeding the breaker, and `run --once` leaves no FR in progress."""

from __future__ import annotations

from pathlib import Path

import frontmatter

from opus.config import PRConfig
from opus.daemon.breaker import CircuitBreaker
from opus.daemon.settle import Settler
from opus.daemon.workers import Finished
from opus.domain import JobState
from opus.errors import ConfigError, GitError, OpusError, StoreConflict
from opus.pipeline.executor import Outcome
from opus.testing.clock import FakeClock
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import daemon
from tests.e2e_pipeline import real_repos as rr
from tests.e2e_pipeline.harness import claim_fr, run_fr, write_fr
from tests.standins.messages_api import MessagesAPI


def test_local_provider_delivers_a_branch_that_stays_in_the_repo(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, talk.REPO_FILES, remote=False)
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    write_fr(project)

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "awaiting_review", run.job.error
    branch = run.job.branch or ""
    assert "def sub" in run_git(project.repo, "show", f"{branch}:calc.py")
    (note,) = list((project.vault / "10_features" / "05_review").glob("PR-*.md"))
    body = note.read_text()
    assert f"Branch `{branch}` in the repository `{project.repo}`" in body
    assert "not pushed" in body


def test_a_forge_provider_without_a_remote_fails_before_any_token(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, talk.REPO_FILES, remote=False)
    api.add(*talk.planner())
    write_fr(project)
    settings = project.settings().model_copy(update={"pr": PRConfig(provider="github")})

    run = run_fr(project, settings)

    assert run.job.state is JobState.FAILED
    error = run.job.error or ""
    assert str(project.repo) in error
    assert f"git -C {project.repo} remote add origin URL" in error
    assert api.requests == []


def test_run_once_without_a_remote_ends_with_the_fr_in_review(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, talk.REPO_FILES, remote=False)
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    daemon.write_config(project)
    note = write_fr(project)

    daemon.run_once(project, api)

    meta = frontmatter.loads((project.vault / "10_features" / "05_review" / note.name)
                             .read_text()).metadata
    assert meta["status"] == "review"


def _settle(tmp_path: Path, error: OpusError) -> tuple[JobState, list[str], str]:
    project = rr.make_project_with(tmp_path, talk.REPO_FILES)
    write_fr(project)
    job, ctx = claim_fr(project.settings())
    breaker = CircuitBreaker(failures=1, cooldown_s=600, clock=FakeClock())
    settler = Settler(ctx, breaker, "e2e-worker")
    settler(Finished(job, Outcome("stopped", "error"), error))
    after = ctx.store.get(job.id)
    return after.state, breaker.opened_keys(), after.error or ""


def test_a_fault_no_retry_heals_fails_the_job_without_the_breaker(tmp_path: Path) -> None:
    fault = ConfigError("the repo has no remote 'origin'; add it with `git remote add`")
    state, opened, error = _settle(tmp_path / "config", fault)
    assert state is JobState.FAILED and opened == [] and "git remote add" in error
    # A git failure may heal (a lock, a network blip): released, and the breaker counts.
    state, opened, _ = _settle(tmp_path / "git", GitError("git fetch failed: timeout"))
    assert state is JobState.QUEUED and len(opened) == 1
    # Two daemons' transactions that kept colliding past every retry: released, not the
    # job's or the repo's fault; the database's breaker counts it (designs/registry.md).
    conflict = StoreConflict("a registry transaction collided (deadlock detected)")
    state, opened, _ = _settle(tmp_path / "conflict", conflict)
    assert state is JobState.QUEUED
    assert [key.split(" ")[0] for key in opened] == ["database:sqlite"]
