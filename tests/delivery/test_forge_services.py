"""The REST forges against what GitHub and Gitea really do (designs/services.md):
redirects, rate limits, Gitea's unpaged comments and clamped pages, the exact base/head
lookup, duplicate PRs, reviews told apart by commit, and a retry after a closed PR."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from opus.config import PRConfig
from opus.delivery.deliver import DeliveryReport, deliver
from opus.forges import forge_for
from opus.forges.http import RateLimited
from opus.forges.rest import RestForge
from tests.delivery.conftest import BRANCH, make_job, make_settings
from tests.standins.forge import Flavor, ForgeStandin

CHANGES = {"github": "CHANGES_REQUESTED", "gitea": "REQUEST_CHANGES"}
REPORT = DeliveryReport(fr_id="FR-7", title="Add greeting", fr_summary="Say hi.")


@pytest.fixture(params=["github", "gitea"])
def standin(request: pytest.FixtureRequest) -> Iterator[ForgeStandin]:
    with ForgeStandin(request.param) as server:
        yield server


def _forge(standin: ForgeStandin, repo: Path, *, api_url: str | None = None) -> RestForge:
    pr = PRConfig(provider=standin.flavor, api_url=api_url or standin.api_url,
                  repository=f"{standin.owner}/{standin.name}", token_env="FORGE_TOKEN")
    forge = forge_for(pr, repo=repo, remote="origin", vault_root=repo, token=standin.token)
    return cast(RestForge, forge)


# --------------------------------------------------------------------------- redirects


def test_a_renamed_repository_is_followed_with_method_and_body(
    standin: ForgeStandin, git_repo: Path
) -> None:
    forge = _forge(standin, git_repo)
    standin.rename("acme", "gadgets")

    opened = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="why")
    forge.comment(opened, "round 2")

    assert standin.prs[1].body == "why" and standin.prs[1].issue_comments
    assert forge.find_pr("opus/fr-1-x", "main") == opened
    assert forge.feedback(opened, None).state == "open"
    statuses = [(r.method, r.status) for r in standin.requests if r.status in (301, 307)]
    assert ("POST", 307) in statuses and ("GET", 301) in statuses
    assert standin.unexpected == []


def test_the_token_is_not_sent_to_another_server(git_repo: Path) -> None:
    with ForgeStandin("github") as old, ForgeStandin("github", token="other") as new:
        old.relocate(new.api_url)
        forge = _forge(old, git_repo)
        with pytest.raises(Exception, match="401"):
            forge.find_pr("opus/fr-1-x")
        [arrived] = new.requests
        assert "authorization" not in arrived.headers
        assert old.requests[0].headers["authorization"] == "Bearer t0ken"


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("status", [403, 429])
def test_a_primary_limit_is_waited_out(status: int, git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        forge = _forge(server, git_repo)
        server.primary_limit(for_s=1.5, status=status)
        started = time.monotonic()
        assert forge.find_pr("opus/fr-1-x") is None
        waited = time.monotonic() - started
        print(f"waited {waited:.1f} s for a {status} primary limit")
        assert waited >= 0.5
        assert [r.status for r in server.requests] == [status, 200]


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_limit_honours_retry_after(status: int, git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        forge = _forge(server, git_repo)
        server.secondary_limit(for_s=1, status=status)
        opened = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        assert opened.number == 1
        assert [r.status for r in server.requests] == [status, 201]


def test_a_long_limit_is_reported_as_a_rate_limit_not_a_permission(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        forge = _forge(server, git_repo)
        forge.client.max_wait_s = 0.2
        server.primary_limit(for_s=600)
        with pytest.raises(RateLimited, match="rate limit") as info:
            forge.find_pr("opus/fr-1-x")
        assert "write access" not in str(info.value)
        assert 500 < info.value.wait_s <= 602


def test_a_plain_403_is_a_permission_problem(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        forge = _forge(server, git_repo)
        server.fail_once("POST", "/pulls", status=403)
        with pytest.raises(Exception, match=r"403.*write access") as info:
            forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        assert not isinstance(info.value, RateLimited)
        assert len(server.requests) == 1


# --------------------------------------------------------------------------- Gitea


def test_gitea_issue_comments_are_fetched_once(git_repo: Path) -> None:
    with ForgeStandin("gitea") as server:
        forge = _forge(server, git_repo)
        pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        for n in range(60):
            server.add_comment(pr.number, f"remark {n}")
        feedback = forge.feedback(pr, None)
        assert len(server.gets(f"/issues/{pr.number}/comments")) == 1
        assert sorted(c.body for c in feedback.comments) == sorted(f"remark {n}" for n in range(60))


@pytest.mark.parametrize("links", [True, False])
def test_a_clamped_gitea_page_is_not_the_last(links: bool, git_repo: Path) -> None:
    with ForgeStandin("gitea", max_limit=10, links=links) as server:
        forge = _forge(server, git_repo)
        first = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        for n in range(2, 26):
            forge.open_pr(branch=f"opus/fr-{n}-y", base="main", title=f"FR-{n}", body="b")
        assert forge.find_pr("opus/fr-1-x") == first  # listed: the oldest is on page 3
        assert len(server.gets("/pulls")) == 3


def test_gitea_find_pr_asks_the_exact_pair(git_repo: Path) -> None:
    with ForgeStandin("gitea") as server:
        forge = _forge(server, git_repo)
        assert forge.find_pr("opus/fr-1-x", "main") is None
        opened = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        assert forge.find_pr("opus/fr-1-x", "main") == opened
        paths = [r.path for r in server.requests if r.method == "GET"]
        assert paths == ["/api/v1/repos/acme/widgets/pulls/main/opus/fr-1-x"] * 2


def test_gitea_a_closed_pair_does_not_hide_the_open_pr(git_repo: Path) -> None:
    with ForgeStandin("gitea") as server:
        forge = _forge(server, git_repo)
        forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        server.close(1)
        second = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        assert second.number == 2
        assert forge.find_pr("opus/fr-1-x", "main") == second


# --------------------------------------------------------------------------- reviews


def test_a_review_in_the_delivery_second_is_seen(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    delivered = datetime(2030, 1, 1, 12, 0, 0, 600_000, tzinfo=UTC)
    # Submitted 0.3 s after the push; the forge stamps the whole second.
    standin.review(pr.number, CHANGES[standin.flavor], body="Handle None.",
                   at="2030-01-01T12:00:00Z")
    feedback = forge.feedback(pr, delivered)
    assert feedback.changes_requested and "Handle None." in feedback.summary


def test_a_review_of_the_previous_commit_is_not_new(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    old_head = standin.prs[pr.number].sha
    standin.push(pr.number)  # opus delivered a new round in this very second
    delivered = datetime(2030, 1, 1, 12, 0, 0, 600_000, tzinfo=UTC)
    standin.review(pr.number, CHANGES[standin.flavor], at="2030-01-01T12:00:00Z",
                   commit=old_head)
    assert not forge.feedback(pr, delivered).changes_requested


def test_the_latest_verdict_is_the_highest_review_id(standin: ForgeStandin, git_repo: Path) -> None:
    forge = _forge(standin, git_repo)
    pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
    same = "2030-01-01T12:00:05Z"
    standin.review(pr.number, "APPROVED", at=same)
    standin.review(pr.number, CHANGES[standin.flavor], at=same, body="Wait, one more thing.")
    standin.prs[pr.number].reviews.reverse()  # listing order is not to be trusted
    assert forge.feedback(pr, None).changes_requested


# --------------------------------------------------------------------------- retry


@pytest.mark.parametrize("flavor", ["github", "gitea"])
def test_a_retry_after_a_closed_pr_opens_a_new_one(
    flavor: Flavor, work: Path, bare_remote: Path, tmp_path: Path
) -> None:
    with ForgeStandin(flavor, remote=bare_remote) as server:
        forge = _forge(server, work)
        settings = make_settings(tmp_path)
        first = deliver(make_job(work), work, forge, settings, REPORT)
        server.close(first.number)
        again = deliver(make_job(work), work, forge, settings, REPORT)
        assert (again.number, again.state, again.branch) == (2, "open", BRANCH)
        assert forge.find_pr(BRANCH, "main") == again
        assert server.unexpected == []
