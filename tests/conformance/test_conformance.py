"""opus's GitHub and Gitea requests against the published operations (vendored in this
folder). The stand-in checks every request of the whole suite; these tests show the
check refuses what the documents do not allow, and that a full workload of each forge
uses every vendored operation and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from opus.config import PRConfig
from opus.forges import forge_for
from opus.forges.rest import RestForge
from opus.seams import Forge
from tests.conformance.ops import Flavor, check, document, operations
from tests.standins.ci import StandinCheck
from tests.standins.forge import ForgeStandin
from tests.standins.protection import Rule

GITHUB_HEADERS = {"authorization": "Bearer t", "user-agent": "opus",
                  "accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"}
GITEA_HEADERS = {"authorization": "token t"}


def _problems(flavor: Flavor, method: str, path: str, *, query: dict[str, list[str]] | None = None,
              body: Any = None, headers: dict[str, str] | None = None) -> list[str]:
    default = GITHUB_HEADERS if flavor == "github" else GITEA_HEADERS
    return check(flavor, method, path, query=query or {},
                 headers=default if headers is None else headers, body=body)[1]


Case = tuple[Flavor, str, str, dict[str, list[str]] | None, Any, str]


@pytest.mark.parametrize(
    "case",
    [
        # What opus sent before: Gitea has no `newest` sort, and its issue comments
        # take no paging.
        ("gitea", "GET", "/repos/a/b/pulls", {"state": ["all"], "sort": ["newest"]}, None,
         "sort='newest' is not one of"),
        ("gitea", "GET", "/repos/a/b/issues/1/comments", {"limit": ["50"], "page": ["1"]}, None,
         "query parameter 'limit' is not in the operation"),
        ("github", "GET", "/repos/a/b/pulls", {"per_page": ["500"]}, None, "above 100"),
        ("github", "GET", "/repos/a/b/pulls", {"state": ["merged"]}, None, "not one of"),
        ("github", "GET", "/repos/a/b/issues/1/comments", {"since": ["yesterday"]}, None,
         "not an RFC 3339 date-time"),
        ("github", "POST", "/repos/a/b/pulls", None,
         {"title": "t", "head": "h", "base": "main", "labels": ["x"]}, "'labels' is not in"),
        ("github", "POST", "/repos/a/b/pulls", None, {"title": "t", "head": "h"},
         "'base' is required"),
        ("github", "POST", "/repos/a/b/pulls", None, {"head": "h", "base": "b", "draft": "no"},
         "'draft' is not a boolean"),
        ("gitea", "POST", "/repos/a/b/issues/3/comments", None, {}, "'body' is required"),
        ("github", "GET", "/repos/a/b/pulls/1/files", None, None, "none of the published"),
        ("github", "GET", "/repos/a/b/rules/branches/main", {"per_page": ["500"]}, None,
         "above 100"),
        ("gitea", "GET", "/repos/a/b/branch_protections", None, None, "none of the published"),
        ("gitea", "GET", "/repos/a/b/pulls/1", None, {"x": 1}, "a body on an operation"),
    ],
)
def test_the_check_refuses_what_is_not_published(case: Case) -> None:
    flavor, method, path, query, body, expected = case
    problems = _problems(flavor, method, path, query=query, body=body)
    assert any(expected in problem for problem in problems), problems


def test_the_check_wants_the_required_headers() -> None:
    headers = {k: v for k, v in GITHUB_HEADERS.items() if k != "x-github-api-version"}
    assert _problems("github", "GET", "/repos/a/b/pulls/1", headers=headers)
    assert _problems("gitea", "GET", "/repos/a/b/pulls/1", headers={"authorization": "Bearer t"})
    assert _problems("github", "GET", "/repos/a/b/pulls/1") == []


def test_gitea_routes_an_index_before_a_base_head_pair() -> None:
    assert check("gitea", "GET", "/repos/a/b/pulls/12", query={}, headers=GITEA_HEADERS,
                 body=None)[0] == "repoGetPullRequest"
    assert check("gitea", "GET", "/repos/a/b/pulls/main/opus/fr-1-x", query={},
                 headers=GITEA_HEADERS, body=None)[0] == "repoGetPullRequestByBaseHead"


def test_each_document_names_its_source_and_the_client_speaks_its_version(
    git_repo: Path,
) -> None:
    for flavor in ("github", "gitea"):
        assert "commit" in document(flavor)["document"]
    pr = PRConfig(provider="github", api_url="http://127.0.0.1:9", repository="a/b")
    forge = cast(RestForge, forge_for(pr, repo=git_repo, remote="origin", vault_root=git_repo,
                                      token="t"))
    sent = forge.client._headers["X-GitHub-Api-Version"]
    assert sent == document("github")["api_version"]


@pytest.mark.parametrize("flavor", ["github", "gitea"])
def test_a_full_workload_uses_every_operation_and_only_as_published(
    flavor: Flavor, git_repo: Path
) -> None:
    changes = "CHANGES_REQUESTED" if flavor == "github" else "REQUEST_CHANGES"
    with ForgeStandin(flavor, max_limit=2) as server:
        pr_config = PRConfig(provider=flavor, api_url=server.api_url, repository="acme/widgets")
        forge = cast(RestForge, forge_for(pr_config, repo=git_repo, remote="origin",
                                          vault_root=git_repo, token=server.token))
        assert forge.find_pr("opus/fr-1-x", "main") is None
        pr = forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b")
        for n in range(2, 5):
            forge.open_pr(branch=f"opus/fr-{n}-y", base="main", title=f"FR-{n}", body="b")
        assert forge.open_pr(branch="opus/fr-1-x", base="main", title="FR-1: X", body="b") == pr
        assert forge.find_pr("opus/fr-1-x") == pr  # the paged listing
        server.review(pr.number, changes, body="Fix it.", comments=(("a.py", 3, "here"),))
        server.add_comment(pr.number, "and this")
        forge.comment(pr, "round 2")
        server.rename("acme", "gadgets")
        feedback = forge.feedback(pr, datetime(2020, 1, 1, tzinfo=UTC))
        assert feedback.changes_requested
        assert feedback.head is not None
        server.ci.set(feedback.head, [
            StandinCheck("build", "failure", annotations=[("a.py", 3, "boom")], log="E  boom\n"),
            StandinCheck("lint", "success"),
            StandinCheck("deploy", "failure", kind="status", summary="no"),
        ])  # fmt: skip
        report = forge.checks(feedback.head, details=True)
        assert report.state == "failure" and report.failing
        server.rules.protect("main", Rule(contexts=["build"], ruleset=["lint"]))
        required = cast(Forge, forge).required_checks("main")
        assert required is not None and "build" in required.names

        assert server.unexpected == [] and server.ci.log_host.unexpected == []
        used = {r.operation for r in server.requests}
        assert used == {op.operation_id for op in operations(flavor)}
        print(f"{flavor}: {len(server.requests)} requests, all as published; "
              f"operations used: {sorted(used)}")  # type: ignore[type-var]
