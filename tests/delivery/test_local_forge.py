"""The `local` forge: the PR is a vault note; a human decides with `decision:`."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus.config import PRConfig
from opus.delivery.review_loop import decide
from opus.errors import ForgeError
from opus.forges import forge_for
from opus.forges.local import LocalForge
from opus.seams import PullRequest, ReviewComment
from opus.vault.text import load_frontmatter, split_note

BRANCH = "opus/fr-61-add-rate-limiting"


@pytest.fixture
def forge(tmp_path: Path) -> LocalForge:
    made = forge_for(PRConfig(provider="local"), repo=tmp_path, remote="origin",
                     vault_root=tmp_path / "vault", token=None)
    assert isinstance(made, LocalForge)
    return made


def _open(forge: LocalForge) -> PullRequest:
    return forge.open_pr(branch=BRANCH, base="main", title="FR-61: Add rate limiting",
                         body="## Summary\n\nLimit requests.")


def _meta(text: str) -> dict[str, object]:
    meta = load_frontmatter(split_note(text))
    assert isinstance(meta, dict)
    return meta


def _set(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def test_open_writes_the_note_and_find_returns_it(forge: LocalForge, tmp_path: Path) -> None:
    pr = _open(forge)
    path = tmp_path / "vault/10_features/05_review/PR-FR-61-fr-61-add-rate-limiting.md"
    assert pr.url == str(path) and pr.number == 1 and pr.state == "open"
    meta = _meta(path.read_text())
    assert meta["pr_for"] == "[[FR-61]]" and meta["branch"] == BRANCH and meta["base"] == "main"
    assert meta["state"] == "open" and meta["decision"] is None and meta["number"] == 1
    assert "Limit requests." in path.read_text()
    assert LocalForge(tmp_path / "vault").find_pr(BRANCH) == pr  # a restart finds it
    assert forge.find_pr("opus/other") is None


def test_opening_twice_keeps_one_note(forge: LocalForge, tmp_path: Path) -> None:
    first = _open(forge)
    assert _open(forge) == first
    assert len(list((tmp_path / "vault").rglob("PR-*.md"))) == 1


@pytest.mark.parametrize(("value", "expected"), [("approve", "done"), ("reject", "cancelled"),
                                                 ("", "wait")])
def test_decision_maps_to_the_job_outcome(forge: LocalForge, value: str, expected: str) -> None:
    pr = _open(forge)
    _set(Path(pr.url), "decision:", f"decision: {value}")
    assert decide(forge.feedback(pr, None)) == expected


def test_changes_bring_the_review_section_and_comments(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    asked = "  - {path: src/a.py, line: 4, body: off by one}\n  - add a test"
    _set(path, "decision:", f"decision: changes\ncomments:\n{asked}")
    _set(path, "## Your review\n", "## Your review\n\nPlease cap at 100 requests per minute.\n")
    feedback = forge.feedback(pr, None)
    assert decide(feedback) == "new_round"
    assert feedback.summary == "Please cap at 100 requests per minute."
    assert feedback.comments == (
        ReviewComment(None, None, "Please cap at 100 requests per minute."),
        ReviewComment("src/a.py", 4, "off by one"),
        ReviewComment(None, None, "add a test"),
    )


def test_comment_appends_and_resets_the_decision(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: changes")
    forge.comment(pr, "### opus — round 2\n\nCapped at 100.")
    text = path.read_text()
    assert _meta(text)["decision"] is None
    assert text.rstrip().endswith("Capped at 100.") and "Limit requests." in text
    assert decide(forge.feedback(pr, None)) == "wait"


def test_an_old_changes_decision_does_not_start_a_second_round(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: changes")
    past = time.time() - 60
    os.utime(path, (past, past))
    assert decide(forge.feedback(pr, datetime.now(UTC) - timedelta(seconds=30))) == "wait"
    assert decide(forge.feedback(pr, datetime.now(UTC) - timedelta(seconds=90))) == "new_round"


def test_a_moved_note_is_still_found(forge: LocalForge, tmp_path: Path) -> None:
    pr = _open(forge)
    done = tmp_path / "vault/10_features/06_done"
    done.mkdir(parents=True)
    moved = done / Path(pr.url).name
    Path(pr.url).rename(moved)
    _set(moved, "decision:", "decision: approve")
    assert decide(forge.feedback(pr, None)) == "done"


def test_bad_notes_give_forge_errors_not_crashes(forge: LocalForge) -> None:
    pr = _open(forge)
    path = Path(pr.url)
    _set(path, "decision:", "decision: maybe")
    with pytest.raises(ForgeError, match="not one of approve, reject, changes"):
        forge.feedback(pr, None)
    _set(path, "decision: maybe", "decision: [unclosed")
    with pytest.raises(ForgeError, match="not valid YAML"):
        forge.feedback(pr, None)
    path.unlink()
    with pytest.raises(ForgeError, match="is gone"):
        forge.feedback(pr, None)


def test_the_agents_review_is_never_read_as_the_humans(tmp_path: Path) -> None:
    forge = LocalForge(tmp_path / "vault")
    body = ("## FR-61: Add rate limiting\n\nFeature request: `/abs/path/FR-61.md`\n\n"
            "## Review\n\n**approve** — looks complete to me\n\n---\n1 round, cost $0.10.")
    pr = forge.open_pr(branch=BRANCH, base="main", title="FR-61: Add rate limiting", body=body)
    path = Path(pr.url)
    text = path.read_text()
    assert "## Agent review" in text and "\n## Review\n" not in text
    assert "Feature request: [[FR-61]]" in text and "/abs/path" not in text
    assert "decision: changes" in text  # the note says how to request changes
    _set(path, "decision:", "decision: changes")
    feedback = forge.feedback(pr, None)
    assert feedback.changes_requested and feedback.summary == "" and feedback.comments == ()
    _set(path, "## Your review\n", "## Your review\n\nUse a token bucket.\n")
    feedback = forge.feedback(pr, None)
    assert feedback.summary == "Use a token bucket."
    assert all("looks complete" not in c.body for c in feedback.comments)
    forge.comment(pr, "### opus — round 2\n\nDone with a token bucket.")
    answered = path.read_text()
    assert "> Use a token bucket." in answered  # the handled request moves to the log
    assert forge.feedback(pr, None).summary == ""  # the human's section is empty again
    _set(path, "decision:", "decision: changes")
    assert forge.feedback(pr, None).summary == ""


@pytest.mark.parametrize("decision", ["reject", "approve"])
def test_a_new_job_never_inherits_an_old_decision(tmp_path: Path, decision: str) -> None:
    forge = LocalForge(tmp_path / "vault")
    old = _open(forge)
    _set(Path(old.url), "decision:", f"decision: {decision}")
    assert forge.feedback(old, None).state in ("closed", "merged")
    assert _meta(Path(old.url).read_text())["state"] in ("closed", "merged")
    again = forge.find_pr(BRANCH)  # a retry or re-plan delivers again: find-or-open
    assert again is not None and again.url == old.url
    assert decide(forge.feedback(again, None)) == "wait"  # reopened, not the old decision
    meta = _meta(Path(old.url).read_text())
    assert (meta["state"], meta["decision"]) == ("open", None)
    assert decide(forge.feedback(again, None)) == "wait"


TITLES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
    max_size=60,
).filter(lambda t: t.strip() == t and t.strip())


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(title=TITLES)
def test_any_title_survives_the_pr_note_round_trip(tmp_path: Path, title: str) -> None:
    vault = tmp_path / f"v{abs(hash(title))}"
    forge = LocalForge(vault)
    pr = forge.open_pr(branch=BRANCH, base="main", title=f"FR-61: {title}", body="Body.")
    meta = _meta(Path(pr.url).read_text(encoding="utf-8"))
    assert meta["title"] == f"FR-61: {title}"
    assert LocalForge(vault).find_pr(BRANCH) == pr
    assert decide(forge.feedback(pr, None)) == "wait"


def test_emoji_and_quotes_titles_read_back() -> None:
    import tempfile

    for title in ["Add 🚀 launch", 'Say "hi": now # really', "日本語のタイトル", "Ünïcödé — ok"]:
        with tempfile.TemporaryDirectory() as tmp:
            forge = LocalForge(Path(tmp))
            pr = forge.open_pr(branch=BRANCH, base="main", title=f"FR-61: {title}", body="B")
            text = Path(pr.url).read_text(encoding="utf-8")
            assert "\\u" not in text and title.split()[0] in text
            assert _meta(text)["title"] == f"FR-61: {title}"


def test_pr_notes_live_in_the_configured_features_folder(tmp_path: Path) -> None:
    made = forge_for(PRConfig(provider="local"), repo=tmp_path, remote="origin",
                     vault_root=tmp_path / "vault", token=None, features_dir="Work/Requests")
    pr = made.open_pr(branch=BRANCH, base="main", title="FR-61: x", body="B")
    assert Path(pr.url).parent == tmp_path / "vault" / "Work" / "Requests" / "05_review"
    assert made.find_pr(BRANCH) == pr


def test_notes_it_writes_have_the_mode_of_a_file_the_user_makes(
    forge: LocalForge, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        pr = _open(forge)
        forge.comment(pr, "Round 2 pushed.")
    finally:
        os.umask(old)
    assert oct(Path(pr.url).stat().st_mode & 0o777) == oct(0o644)  # not a temp file's 0600
