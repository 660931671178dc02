"""Which checks are required: read from the GitHub and Gitea stand-ins (branch protection,
rulesets, Gitea's branch), refused where the services refuse, and the pure narrowing of a
commit's checks to the required ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.config import PRConfig
from opus.delivery.required_checks import not_required_line, scope
from opus.forges import forge_for
from opus.seams import Check, CIReport, Forge, RequiredChecks
from tests.standins.forge import Flavor, ForgeStandin
from tests.standins.protection import Rule

SHA = "0123456789abcdef0123456789abcdef01234567"


def _forge(server: ForgeStandin, repo: Path) -> Forge:
    config = PRConfig(provider=server.flavor, api_url=server.api_url, repository="acme/widgets")
    return forge_for(config, repo=repo, remote="origin", vault_root=repo, token=server.token)


def _statuses(server: ForgeStandin) -> list[int]:
    return [r.status for r in server.requests]


def test_github_unprotected_says_nothing_and_its_404_is_no_refusal(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        assert _forge(server, git_repo).required_checks("main") is None
        assert _statuses(server) == [200, 404]  # rulesets: none; protection: 404
        assert server.unexpected == []


def test_github_joins_branch_protection_and_rulesets(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        server.rules.protect("main", Rule(contexts=["test"], checks=["lint"],
                                          ruleset=["test", "build"]))  # fmt: skip
        found = _forge(server, git_repo).required_checks("main")
        assert found == RequiredChecks(("test", "build", "lint"),
                                       "rulesets and branch protection of main")  # fmt: skip
        assert server.unexpected == []


def test_github_without_admin_rights_reads_the_rulesets_alone(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        server.rules.protect("main", Rule(contexts=["test"], admin=False))
        assert _forge(server, git_repo).required_checks("main") is None
        assert _statuses(server) == [200, 403]
        server.rules.protect("main", Rule(contexts=["test"], ruleset=["build"], admin=False))
        assert _forge(server, git_repo).required_checks("main") == RequiredChecks(
            ("build",), "rulesets of main")


def test_github_protection_without_status_checks_says_nothing(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        server.rules.protect("main", Rule())
        assert _forge(server, git_repo).required_checks("main") is None
        assert server.requests[-1].status == 404


def test_a_base_branch_with_a_slash_is_one_path_parameter(git_repo: Path) -> None:
    for flavor in ("github", "gitea"):
        with ForgeStandin(flavor) as server:
            server.rules.protect("release/1.x", Rule(contexts=["test"]))
            found = _forge(server, git_repo).required_checks("release/1.x")
            assert found is not None and found.names == ("test",), flavor
            assert server.unexpected == []


def test_gitea_reads_the_branchs_own_protection_as_patterns(git_repo: Path) -> None:
    with ForgeStandin("gitea") as server:
        forge = _forge(server, git_repo)
        assert forge.required_checks("main") is None  # unprotected
        server.rules.protect("main", Rule())  # protected, no status check required
        assert forge.required_checks("main") is None
        server.rules.protect("main", Rule(contexts=["ci/*", "lint"]))
        assert forge.required_checks("main") == RequiredChecks(
            ("ci/*", "lint"), "branch protection of main", patterns=True)
        assert server.unexpected == []


def test_gitea_branch_that_does_not_exist_says_nothing(tmp_path: Path, git_repo: Path) -> None:
    with ForgeStandin("gitea", remote=tmp_path) as server:  # an empty "remote": no branches
        (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
        assert _forge(server, git_repo).required_checks("gone") is None
        assert _statuses(server) == [404]


def _check(name: str, state: str, conclusion: str = "") -> Check:
    return Check(name, state, conclusion or state)  # type: ignore[arg-type]


REPORT = CIReport(SHA, "failure", (
    _check("test", "success"), _check("lint", "success"),
    _check("codecov/patch", "failure"), _check("deploy-preview", "pending", "queued"),
))  # fmt: skip


def test_without_a_rule_every_check_is_required_less_the_optional_ones() -> None:
    everything = scope(REPORT, None)
    assert everything.report.state == "failure" and not everything.optional_failing
    scoped = scope(REPORT, None, ["codecov/*", "deploy-*"])
    assert scoped.report.state == "success"
    assert [c.name for c in scoped.report.checks] == ["test", "lint"]
    assert not_required_line(scoped) == "not required, left alone: codecov/patch (failure)"


def test_the_forges_rule_decides_and_a_missing_required_check_is_pending() -> None:
    rule = RequiredChecks(("test", "build"), "branch protection of main")
    scoped = scope(REPORT, rule)
    assert [c.name for c in scoped.report.checks] == ["test", "build"]
    assert scoped.report.state == "pending"  # `build` has not reported on this commit
    assert scoped.report.checks[1].conclusion == "expected"
    assert [c.name for c in scoped.optional_failing] == ["codecov/patch"]
    assert scope(REPORT, rule, ["build"]).report.state == "success"


@pytest.mark.parametrize(("names", "state"), [(("ci/*",), "success"), (("codecov/*",), "failure"),
                                              (("nightly/*",), "pending")])
def test_gitea_patterns_match_names(names: tuple[str, ...], state: str) -> None:
    report = CIReport(SHA, "failure", (_check("ci/test", "success"),
                                       _check("codecov/patch", "failure")))  # fmt: skip
    rule = RequiredChecks(names, "branch protection of main", patterns=True)
    assert scope(report, rule).report.state == state


@pytest.mark.parametrize("flavor", ["github", "gitea"])
def test_a_flavor_reads_no_rule_it_does_not_have(flavor: Flavor, git_repo: Path) -> None:
    """Each forge asks only its own operations (the stand-in refuses any other)."""
    with ForgeStandin(flavor) as server:
        server.rules.protect("main", Rule(contexts=["t"], ruleset=["t"]))
        assert _forge(server, git_repo).required_checks("main") is not None
        assert server.unexpected == []
        assert {r.operation for r in server.requests} == (
            {"repos/get-branch-rules", "repos/get-status-checks-protection"}
            if flavor == "github" else {"repoGetBranch"})
