"""deliver() end to end: real git with a bare `origin`, the strict forge stand-in or the
vault note forge; idempotence across a restart; guards stop everything before a push."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opus.config import PRConfig
from opus.delivery.deliver import DeliveryReport, deliver, render_pr_body
from opus.delivery.review_loop import decide, render_round_comment
from opus.errors import DeliveryBlocked
from opus.forges import forge_for
from opus.seams import Forge, PRFeedback, ReviewComment
from tests.conftest import run_git
from tests.delivery.conftest import BRANCH, make_job, make_settings, opus_commit
from tests.standins.forge import ForgeStandin

REPORT = DeliveryReport(
    fr_id="FR-7", title="Add greeting", fr_summary="Say hi to users.",
    fr_link="vault/10_features/04_in_progress/FR-7.md",
    plan_summary="Add greet()", plan_steps=("write greet", "test greet"),
    test_summary="`pytest -q` passed (exit 0, 0.4s)", test_tail="3 passed in 0.40s",
    review_verdict="approve", review_summary="Small and correct.", iterations=2, cost_usd=0.4321,
)  # fmt: skip


@pytest.fixture
def github() -> Iterator[ForgeStandin]:
    with ForgeStandin("github") as server:
        yield server


def _github_forge(server: ForgeStandin, work: Path) -> Forge:
    pr = PRConfig(provider="github", api_url=server.api_url, repository="acme/widgets")
    return forge_for(pr, repo=work, remote="origin", vault_root=work, token=server.token)


def test_deliver_pushes_and_opens_one_pr_across_a_restart(
    work: Path, bare_remote: Path, github: ForgeStandin, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    pr = deliver(make_job(work), work, _github_forge(github, work), settings, REPORT)
    assert run_git(bare_remote, "rev-parse", BRANCH) == run_git(work, "rev-parse", "HEAD")
    assert (pr.branch, pr.base, pr.number) == (BRANCH, "main", 1)
    opened = github.posts("/pulls")[0].body
    assert opened["title"] == "FR-7: Add greeting" and opened["body"] == render_pr_body(REPORT)
    # The daemon restarts: a new forge instance, delivery runs again.
    again = deliver(make_job(work), work, _github_forge(github, work), settings, REPORT)
    assert again == pr
    assert len(github.posts("/pulls")) == 1
    assert github.unexpected == []


def test_a_human_review_round_trip(
    work: Path, bare_remote: Path, github: ForgeStandin, tmp_path: Path
) -> None:
    settings, forge = make_settings(tmp_path), _github_forge(github, work)
    pr = deliver(make_job(work), work, forge, settings, REPORT)
    delivered = datetime.now(UTC)
    reviewed = (delivered + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    github.review(pr.number, "CHANGES_REQUESTED", body="Greet by name.",
                  comments=(("src/greet.py", 1, "take a name argument"),), at=reviewed)
    feedback = forge.feedback(pr, delivered)
    assert decide(feedback) == "new_round"
    new_head = opus_commit(work, {"src/greet.py": "def greet(n: str) -> str:\n    return n\n"},
                           msg="greet by name")
    assert deliver(make_job(work), work, forge, settings, REPORT) == pr
    assert run_git(bare_remote, "rev-parse", BRANCH) == new_head
    forge.comment(pr, render_round_comment(2, summary="Greets by name now.",
                                           commits=["greet by name"], addressed=feedback.comments))
    assert "round 2" in github.prs[pr.number].issue_comments[-1]["body"]
    github.merge(pr.number)
    assert decide(forge.feedback(pr, delivered)) == "done"
    assert len(github.posts("/pulls")) == 1 and github.unexpected == []


def test_local_provider_pushes_and_writes_the_note(
    work: Path, bare_remote: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    forge = forge_for(settings.pr, repo=work, remote="origin", vault_root=settings.vault_path,
                      token=None)
    pr = deliver(make_job(work), work, forge, settings, REPORT)
    note = Path(pr.url)
    assert note.parent == settings.vault_path / "10_features" / "05_review"
    assert note.name == "PR-FR-7-fr-7-add-greeting.md"
    assert "Small and correct." in note.read_text()
    assert run_git(bare_remote, "rev-parse", BRANCH) == run_git(work, "rev-parse", "HEAD")
    assert deliver(make_job(work), work, forge, settings, REPORT) == pr


def _assert_nothing_left(bare_remote: Path, github: ForgeStandin) -> None:
    assert run_git(bare_remote, "branch", "--list", BRANCH) == ""
    assert github.requests == []


def test_out_of_scope_change_blocks_before_any_push(
    work: Path, bare_remote: Path, github: ForgeStandin, tmp_path: Path
) -> None:
    opus_commit(work, {"Makefile": "all:\n"})
    job = make_job(work, allowed=("src/**", "tests/**"))
    with pytest.raises(DeliveryBlocked, match="Makefile"):
        deliver(job, work, _github_forge(github, work), make_settings(tmp_path), REPORT)
    _assert_nothing_left(bare_remote, github)


def test_secret_blocks_before_any_push(
    work: Path, bare_remote: Path, github: ForgeStandin, tmp_path: Path
) -> None:
    opus_commit(work, {"src/conf.py": 'TOKEN = "ghp_' + 'wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"\n'})
    with pytest.raises(DeliveryBlocked, match="GitHub Token"):
        deliver(make_job(work), work, _github_forge(github, work), make_settings(tmp_path), REPORT)
    _assert_nothing_left(bare_remote, github)


def test_protected_branch_job_is_refused(
    work: Path, bare_remote: Path, github: ForgeStandin, tmp_path: Path
) -> None:
    before = run_git(bare_remote, "rev-parse", "main")
    job = make_job(work, branch="main")
    with pytest.raises(DeliveryBlocked, match=r"git\.protected"):
        deliver(job, work, _github_forge(github, work), make_settings(tmp_path), REPORT)
    assert run_git(bare_remote, "rev-parse", "main") == before and github.requests == []


def test_pr_body_holds_summary_plan_tests_review_and_cost() -> None:
    body = render_pr_body(REPORT)
    for part in ("Say hi to users.", "vault/10_features/04_in_progress/FR-7.md",
                 "1. write greet", "2. test greet", "`pytest -q` passed", "3 passed in 0.40s",
                 "**approve** — Small and correct.", "2 code→test→review rounds", "$0.43"):
        assert part in body
    long = render_pr_body(DeliveryReport(fr_id="FR-1", title="t", fr_summary="x" * 10_000))
    assert len(long) < 5000 and "no plan recorded" in long and "no test result" in long


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        (PRFeedback(state="open"), "wait"),
        (PRFeedback(state="merged", changes_requested=True), "done"),
        (PRFeedback(state="closed"), "cancelled"),
        (PRFeedback(state="open", changes_requested=True), "new_round"),
    ],
)
def test_decide(feedback: PRFeedback, expected: str) -> None:
    assert decide(feedback) == expected


def test_round_comment_lists_what_changed() -> None:
    text = render_round_comment(
        3, summary="Handled None.", commits=["fix None", "add test"],
        addressed=[
            ReviewComment("src/a.py", 4, "None here\nmore"),
            ReviewComment(None, None, "ok"),
        ],
        test_summary="`pytest` passed",
    )  # fmt: skip
    assert text.startswith("### opus — round 3\n\nHandled None.")
    assert "- `src/a.py:4` None here\n" in text and "- ok\n" in text
    assert "- fix None\n- add test" in text and "Tests: `pytest` passed" in text
