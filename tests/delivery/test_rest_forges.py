"""GitHub and Gitea forges against the strict stand-in server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opus.config import PRConfig
from opus.delivery.review_loop import decide
from opus.errors import ConfigError, ForgeError
from opus.forges import forge_for
from opus.seams import Forge, ReviewComment
from tests.conftest import run_git
from tests.standins.forge import Flavor, ForgeStandin

CHANGES = {"github": "CHANGES_REQUESTED", "gitea": "REQUEST_CHANGES"}


@pytest.fixture(params=["github", "gitea"])
def standin(request: pytest.FixtureRequest) -> Iterator[ForgeStandin]:
    with ForgeStandin(request.param) as server:
        yield server


def _forge(standin: ForgeStandin, repo: Path, token: str | None = None) -> Forge:
    if not any(line == "origin" for line in run_git(repo, "remote").splitlines()):
        url = f"git@forge.test:{standin.owner}/{standin.name}.git"
        run_git(repo, "remote", "add", "origin", url)
    pr = PRConfig(provider=standin.flavor, api_url=standin.api_url, token_env="FORGE_TOKEN")
    return forge_for(pr, repo=repo, remote="origin", vault_root=repo / "vault",
                     token=token or standin.token)


def test_open_find_and_no_second_pr(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    assert forge.find_pr("opus/fr-1-x") is None
    opened = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="why")
    again = _forge(standin, git_repo).find_pr("opus/fr-1-x")  # a new instance: a restart
    assert again == opened and opened.state == "open" and opened.base == "main"
    assert len(standin.posts("/pulls")) == 1
    assert standin.prs[opened.number].body == "why"
    assert standin.unexpected == []


def test_merged_and_closed_map_to_done_and_cancelled(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    a = forge.open_pr(branch="opus/fr-1-a", base="main", title="FR-1: A", body="a")
    b = forge.open_pr(branch="opus/fr-2-b", base="main", title="FR-2: B", body="b")
    assert decide(forge.feedback(a, None)) == "wait"
    standin.merge(a.number)
    standin.close(b.number)
    assert decide(forge.feedback(a, None)) == "done"
    assert decide(forge.feedback(b, None)) == "cancelled"
    assert forge.find_pr("opus/fr-1-a").state == "merged"  # type: ignore[union-attr]
    assert standin.unexpected == []


def test_changes_requested_after_since_starts_a_round(
    standin: ForgeStandin, git_repo: Path
) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    delivered = datetime.now(UTC) - timedelta(seconds=5)
    standin.review(pr.number, CHANGES[standin.flavor], body="Handle the empty case.",
                   comments=(("src/greet.py", 3, "None is possible here"),))
    standin.add_comment(pr.number, "Also rename greet to hello.")
    feedback = forge.feedback(pr, delivered)
    assert decide(feedback) == "new_round"
    assert ReviewComment("src/greet.py", 3, "None is possible here") in feedback.comments
    assert ReviewComment(None, None, "Also rename greet to hello.") in feedback.comments
    assert "Handle the empty case." in feedback.summary
    # After opus pushed the new round (a later `since`), the old request no longer counts.
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert decide(forge.feedback(pr, later)) == "wait"
    assert standin.unexpected == []


def test_a_later_approval_supersedes_the_request(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    standin.review(pr.number, CHANGES[standin.flavor], at="2030-01-01T00:00:00Z")
    standin.review(pr.number, "APPROVED", at="2030-01-02T00:00:00Z")
    assert forge.feedback(pr, None).changes_requested is False


def test_opus_comments_are_not_read_back_as_feedback(
    standin: ForgeStandin, git_repo: Path
) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    forge.comment(pr, "### opus — round 2\n\nFixed it.")
    assert len(standin.posts(f"/issues/{pr.number}/comments")) == 1
    assert forge.feedback(pr, None).comments == ()
    assert standin.unexpected == []


def test_bad_token_names_the_env_var(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo, token="wrong")
    with pytest.raises(ForgeError, match=r"\$FORGE_TOKEN") as info:
        forge.find_pr("opus/fr-1-x")
    assert "401" in str(info.value) and "wrong" not in str(info.value)


def test_unknown_repository_is_a_404_with_advice(standin: ForgeStandin, git_repo: Path) -> None:
    pr = PRConfig(provider=standin.flavor, api_url=standin.api_url, repository="acme/nope")
    forge = forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo, token=standin.token)
    with pytest.raises(ForgeError, match="acme/nope not found"):
        forge.find_pr("opus/fr-1-x")


def test_a_second_open_for_the_same_branch_returns_the_open_pr(
    standin: ForgeStandin, git_repo: Path
) -> None:
    forge = _forge(standin, git_repo)
    first = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    again = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    assert again == first and len(standin.prs) == 1
    # The forge refused the duplicate as it does (GitHub 422, Gitea 409 Conflict).
    assert [r.status for r in standin.posts("/pulls")] == [
        201, 422 if standin.flavor == "github" else 409
    ]


def test_refusals_carry_the_forges_message(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    standin.fail_once("POST", "/pulls", status=422)
    with pytest.raises(ForgeError, match=r"422.*injected fault"):
        forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")


def test_unreachable_forge_is_a_forge_error(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        url = server.api_url
    pr = PRConfig(provider="github", api_url=url, repository="acme/widgets")
    forge = forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo, token="t")
    with pytest.raises(ForgeError, match=r"pr\.api_url"):
        forge.find_pr("opus/fr-1-x")


@pytest.mark.parametrize("flavor", ["github", "gitea"])
def test_missing_token_is_a_config_error(flavor: Flavor, git_repo: Path) -> None:
    pr = PRConfig(provider=flavor, api_url="http://127.0.0.1:9", repository="a/b",
                  token_env="MY_TOKEN")
    with pytest.raises(ConfigError, match=r"\$MY_TOKEN"):
        forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo, token=None)


def test_gitea_needs_an_api_url(git_repo: Path) -> None:
    pr = PRConfig(provider="gitea", repository="a/b")
    with pytest.raises(ConfigError, match=r"pr\.api_url"):
        forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo, token="t")


def test_unknown_provider_lists_the_names(git_repo: Path) -> None:
    pr = PRConfig.model_construct(provider="bitbucket")  # bypasses validation on purpose
    with pytest.raises(ConfigError, match="gitea, github, local"):
        forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo, token=None)
