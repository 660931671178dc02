"""Reading a commit's checks from the GitHub and Gitea stand-ins (published shapes), and
the pure parts: what a check's words mean, job logs cleaned and cut, the coder's report."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from opus.config import PRConfig
from opus.delivery.ci_report import REPORT_CHARS, ci_report_text
from opus.forges import forge_for
from opus.forges.checks import actions_job_id, check_from_run, log_tail, overall
from opus.forges.github import LOG_BYTES
from opus.forges.rest import RestForge
from opus.seams import Check, CIReport
from tests.standins.ci import StandinCheck
from tests.standins.forge import Flavor, ForgeStandin

SHA = "0123456789abcdef0123456789abcdef01234567"


def _forge(server: ForgeStandin, repo: Path) -> RestForge:
    config = PRConfig(provider=server.flavor, api_url=server.api_url, repository="acme/widgets")
    return cast(RestForge, forge_for(config, repo=repo, remote="origin", vault_root=repo,
                                     token=server.token))  # fmt: skip


@pytest.mark.parametrize("flavor", ["github", "gitea"])
def test_a_commit_without_checks_is_none_and_pending_beats_success(
    flavor: Flavor, git_repo: Path
) -> None:
    kind = "run" if flavor == "github" else "status"
    with ForgeStandin(flavor) as server:
        forge = _forge(server, git_repo)
        assert forge.checks(SHA) == CIReport(sha=SHA, state="none")
        server.ci.set(SHA, [StandinCheck("a", "success", kind=kind),
                            StandinCheck("b", None, kind=kind)])  # fmt: skip
        assert forge.checks(SHA).state == "pending"
        server.ci.set(SHA, [StandinCheck("a", "success", kind=kind),
                            StandinCheck("b", "failure", kind=kind)])  # fmt: skip
        report = forge.checks(SHA)
        assert report.state == "failure" and [c.name for c in report.failing] == ["b"]
        assert server.unexpected == []


def test_github_reads_every_page_of_check_runs_and_the_statuses(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        runs = [StandinCheck(f"job-{n}", "success") for n in range(150)]
        server.ci.set(SHA, [*runs, StandinCheck("deploy", "error", kind="status")])
        report = _forge(server, git_repo).checks(SHA)
        assert len(report.checks) == 151 and report.state == "failure"
        assert [c.name for c in report.failing] == ["deploy"]
        assert len(server.gets("/check-runs")) == 2


def test_a_huge_log_is_read_as_its_tail_without_the_token(git_repo: Path) -> None:
    lines = [f"2026-01-01T00:00:00.0000000Z \x1b[32mline {n}\x1b[0m" for n in range(40_000)]
    with ForgeStandin("github") as server:
        server.ci.set(SHA, [StandinCheck("test", "failure", log="\n".join(lines) + "\n")])
        report = _forge(server, git_repo).checks(SHA, details=True)
        tail = report.failing[0].log_tail
        assert tail.splitlines()[-1] == "line 39999" and "\x1b" not in tail
        assert len(tail.splitlines()) == 150 and len(tail) < LOG_BYTES
        assert server.ci.log_host.unexpected == []
        assert "authorization" not in server.ci.log_host.requests[0]


def test_a_log_that_is_gone_is_named_and_the_report_goes_on(git_repo: Path) -> None:
    with ForgeStandin("github") as server:
        server.ci.set(SHA, [StandinCheck("test", "failure", summary="2 failed", log="x\n")])
        server.fail_once("GET", "/logs", status=410)
        check = _forge(server, git_repo).checks(SHA, details=True).failing[0]
        assert check.summary == "2 failed"
        assert check.log_tail.startswith("(the job's log could not be read:")
        assert "410" in check.log_tail


def test_words_of_a_check_run() -> None:
    def run(status: str, conclusion: str | None) -> str:
        return check_from_run({"name": "t", "status": status, "conclusion": conclusion}).state

    assert run("in_progress", None) == "pending"
    assert run("waiting", None) == "pending"
    assert [run("completed", c) for c in ("success", "neutral", "skipped")] == ["success"] * 3
    failing = ("failure", "cancelled", "timed_out", "action_required", "startup_failure")
    assert [run("completed", c) for c in failing] == ["failure"] * len(failing)
    assert overall([]) == "none"


def test_an_actions_job_is_found_from_its_details_url() -> None:
    actions = {"slug": "github-actions"}
    url = "https://github.com/a/b/actions/runs/11/job/22"
    assert actions_job_id({"id": 5, "app": actions, "details_url": url}) == 22
    assert actions_job_id({"id": 5, "app": actions, "details_url": ""}) == 5
    assert actions_job_id({"id": 5, "app": {"slug": "circleci"}, "details_url": url}) is None


def test_log_tail_drops_colours_stamps_and_blank_ends() -> None:
    raw = b"2026-01-01T10:00:00.123Z \x1b[1;31mE boom\x1b[0m\r\n\x1b]8;;http://x\x07link\n\n\n"
    assert log_tail(raw) == "E boom\nlink"


def test_the_coders_report_is_capped() -> None:
    noisy = Check("test", "failure", "failure", text="x" * 50_000, log_tail="y" * 50_000,
                  annotations=tuple(f"a.py:{n}: bad" for n in range(100)))  # fmt: skip
    one = ci_report_text(CIReport(SHA, "failure", (noisy,)))
    assert "- ... 70 more" in one and "[...]" in one and len(one) < 10_000  # fields cut
    text = ci_report_text(CIReport(SHA, "failure", (noisy,) * 4))
    assert len(text) < REPORT_CHARS + 100 and text.endswith("[... report cut ...]")
    assert text.startswith("The pull request's CI failed on commit 0123456789: test, test")
