"""`Forge.mergeable` against the stand-in: what GitHub and Gitea say about a PR whose
base moved, as their single-PR reply publishes it (checked by the conformance data)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.config import PRConfig
from opus.forges import forge_for
from opus.forges.local import LocalForge
from opus.seams import Forge
from tests.conformance.ops import check_response
from tests.conftest import run_git
from tests.delivery.conftest import BRANCH, human_commit
from tests.standins.forge import ForgeStandin


@pytest.fixture(params=["github", "gitea"])
def standin(request: pytest.FixtureRequest, bare_remote: Path) -> Iterator[ForgeStandin]:
    with ForgeStandin(request.param, remote=bare_remote) as server:
        yield server


@pytest.fixture(autouse=True)
def _quick_github_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opus.forges.github.MERGEABLE_WAITS_S", (0.01, 0.01, 0.01))


def _forge(standin: ForgeStandin, repo: Path) -> Forge:
    pr = PRConfig(provider=standin.flavor, api_url=standin.api_url,
                  repository=f"{standin.owner}/{standin.name}")  # fmt: skip
    return forge_for(pr, repo=repo, remote="origin", vault_root=repo, token=standin.token)


def _pushed_branch(repo: Path, text: str) -> None:
    run_git(repo, "checkout", "-q", "-b", BRANCH)
    human_commit(repo, {"greet.txt": text}, "Branch work")
    run_git(repo, "push", "-q", "origin", BRANCH)
    run_git(repo, "checkout", "-q", "main")


def _base_moves(repo: Path, text: str) -> None:
    human_commit(repo, {"greet.txt": text}, "Base work")
    run_git(repo, "push", "-q", "origin", "main")


def test_a_clean_pr_is_mergeable_and_a_conflicting_one_is_not(
    standin: ForgeStandin, git_repo: Path
) -> None:
    _pushed_branch(git_repo, "hi\n")
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch=BRANCH, base="main", title="FR-7: Greet", body="b")
    assert forge.mergeable(pr) is True

    _base_moves(git_repo, "hello\n")

    assert forge.mergeable(pr) is False
    reply = standin.pr_detail_json(standin.prs[pr.number])
    if standin.flavor == "github":
        assert reply["mergeable_state"] == "dirty"
    assert standin.unexpected == []


def test_github_answers_null_while_computing_and_opus_asks_again(
    bare_remote: Path, git_repo: Path
) -> None:
    with ForgeStandin("github", remote=bare_remote) as standin:
        _pushed_branch(git_repo, "hi\n")
        forge = _forge(standin, git_repo)
        pr = forge.open_pr(branch=BRANCH, base="main", title="FR-7: Greet", body="b")
        _base_moves(git_repo, "hello\n")
        standin.set_mergeable(pr.number, unknown_reads=2)

        assert forge.mergeable(pr) is False
        assert len(standin.gets(f"/pulls/{pr.number}")) == 3

        standin.set_mergeable(pr.number, unknown_reads=10)
        assert forge.mergeable(pr) is None  # still unknown after every retry
        assert len(standin.gets(f"/pulls/{pr.number}")) == 3 + 4
        assert standin.unexpected == []


def test_gitea_says_false_while_its_check_runs(bare_remote: Path, git_repo: Path) -> None:
    with ForgeStandin("gitea", remote=bare_remote) as standin:
        _pushed_branch(git_repo, "hi\n")
        forge = _forge(standin, git_repo)
        pr = forge.open_pr(branch=BRANCH, base="main", title="FR-7: Greet", body="b")
        standin.set_mergeable(pr.number, unknown_reads=1)
        # Gitea's `mergeable` is false while "checking": opus must confirm with git.
        assert forge.mergeable(pr) is False
        assert forge.mergeable(pr) is True


def test_the_local_forge_leaves_the_question_to_git(tmp_path: Path) -> None:
    forge = LocalForge(tmp_path)
    pr = forge.open_pr(branch=BRANCH, base="main", title="FR-7: Greet", body="b")
    assert forge.mergeable(pr) is None


def test_the_published_reply_shapes_are_enforced() -> None:
    assert check_response("github", "pulls/get", {"mergeable": "yes"})
    problems = check_response("github", "pulls/get", {
        "number": 1, "state": "open", "html_url": "u", "merged_at": None, "mergeable": None,
        "mergeable_state": "unknown", "head": {}, "base": {},
    })  # fmt: skip
    assert problems == []
    assert any("'mergeable' is not boolean" in p for p in check_response(
        "gitea", "repoGetPullRequest", {"number": 1, "state": "open", "html_url": "u",
                                         "merged": False, "mergeable": None, "head": {},
                                         "base": {}}))  # fmt: skip
