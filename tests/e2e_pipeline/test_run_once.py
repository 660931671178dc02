"""`opus run --once` as a user runs it: opus.toml names the anthropic engine, the key and
base URL come from the environment, and the planned FR in the vault comes out either
delivered or sent back to its author with the reason."""

from __future__ import annotations

import frontmatter

from opus.domain import JobState
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import daemon
from tests.e2e_pipeline.harness import Project, write_fr
from tests.standins.messages_api import MessagesAPI


def _note_meta(project: Project, folder: str, name: str) -> dict[str, object]:
    note = project.vault / "10_features" / folder / name
    return dict(frontmatter.loads(note.read_text()).metadata)


def test_run_once_takes_a_planned_fr_to_a_delivered_branch(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    daemon.write_config(project)
    note = write_fr(project)

    daemon.run_once(project, api)

    store = daemon.registry(project)
    (job,) = store.jobs()
    store.close()
    assert job.state is JobState.AWAITING_REVIEW, job.error
    assert job.branch == "opus/fr-7-add-subtraction"
    assert run_git(project.remote, "rev-parse", job.branch) == run_git(
        project.repo, "rev-parse", job.branch
    )
    assert project.remote_file(job.branch, "test_sub.py") == talk.TEST_SUB.rstrip("\n")
    meta = _note_meta(project, "05_review", note.name)
    assert meta["status"] == "review"
    assert meta["job"] == job.id and meta["branch"] == job.branch and meta["pr"] == job.pr_url
    assert not api.script  # every scripted reply was played, no more


def test_run_once_sends_an_fr_with_a_missing_base_back_without_spending(
    api: MessagesAPI, project: Project
) -> None:
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    daemon.write_config(project)
    note = write_fr(project, "base: develop")

    daemon.run_once(project, api, expect=1)  # the job failed: exit 1 (SPEC §3)

    assert api.requests == []
    meta = _note_meta(project, "07_failed", note.name)
    assert meta["status"] == "failed"
    error = str(meta["error"])
    assert "`develop` does not exist" in error and "one of: main" in error
