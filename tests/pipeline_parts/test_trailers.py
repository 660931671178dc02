"""opus always recognises its own commits: the `Opus-Job:` trailer parses whatever the
agent's summary says, and every sha opus commits is recorded in the repository."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus.delivery.guards import foreign_commits
from opus.git import git, is_own_commit, own_commits, trailer_job
from opus.pipeline.worktree import Worktree
from tests.conftest import make_repo, run_git

AUTHOR = ("opus", "opus@localhost")
TRICKY = (
    "Added sub.\n\n---\nSigned-off-by: Someone <s@example.com>\nfixes: #12\nkey: value\n"
)

# Lines shaped like what coders write: markdown rules, patch dividers, sign-offs,
# `key: value` lines, comments, blank lines, and arbitrary text.
_LINES = st.one_of(
    st.sampled_from([
        "---", "--- ", "--- a/file", "----", "***", "# Heading", "#", "", " ", "\t",
        "Signed-off-by: A <a@example.com>", "Co-authored-by: B <b@example.com>",
        "key: value", "Opus-Job: 999", "Fixes: #1", "(cherry picked from commit abc)",
        "diff --git a/x b/x", "Change-Id: I123", "Conflicts:", "\tsrc/x.py",
    ]),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
)
SUMMARIES = st.lists(_LINES, max_size=12).map("\n".join)


def _worktree(root: Path) -> Worktree:
    repo = make_repo(root / "repo")
    return Worktree.ensure(repo, root / "state", 7, "opus/fr-1-x", "main", remote="origin")


_counter = itertools.count()
_made: dict[Path, Worktree] = {}


def _shared_worktree(root: Path) -> Worktree:
    """One worktree for every example of a property test (hypothesis reuses tmp_path)."""
    if root not in _made:
        _made[root] = _worktree(root)
    return _made[root]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(summary=SUMMARIES)
def test_the_trailer_parses_whatever_the_summary_says(tmp_path: Path, summary: str) -> None:
    wt = _shared_worktree(tmp_path)
    (wt.path / "calc.py").write_text(f"{next(_counter)}\n")
    sha = wt.commit(f"FR-1: Add sub (round 1)\n\n{summary}", job_id=7, author=AUTHOR)
    assert sha is not None
    assert trailer_job(wt.path, sha) == "7"
    # And git's own trailer parser agrees: the block is the message's last paragraph.
    message = git("log", "-1", "--format=%B", sha, cwd=wt.path)
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, text=True,
        capture_output=True, check=True, cwd=wt.path,
    ).stdout  # fmt: skip
    assert parsed.splitlines()[-1] == "Opus-Job: 7"
    assert foreign_commits(wt.path, sha, "main") == []
    assert is_own_commit(wt.path, sha)


def test_a_summary_with_a_divider_and_sign_offs_keeps_the_trailer_last(tmp_path: Path) -> None:
    wt = _worktree(tmp_path)
    (wt.path / "calc.py").write_text("x = 1\n")
    sha = wt.commit(f"FR-1: Add sub (round 1)\n\n{TRICKY}", job_id=7, author=AUTHOR)
    assert sha is not None
    body = run_git(wt.path, "log", "-1", "--format=%B", sha)
    assert body.splitlines()[-1] == "Opus-Job: 7"
    assert " ---" in body.splitlines()  # the divider is defused, its text kept
    assert "Signed-off-by: Someone <s@example.com>" in body
    assert trailer_job(wt.path, sha) == "7"


def test_commits_are_recognised_by_record_as_well(tmp_path: Path) -> None:
    wt = _worktree(tmp_path)
    (wt.path / "a.txt").write_text("a\n")
    ours = wt.commit("ours", job_id=7, author=AUTHOR)
    assert ours is not None and ours in own_commits(wt.path)
    # A commit without the trailer (a human's, or an old opus's with a broken trailer)
    # is foreign unless the record says opus made it.
    (wt.path / "b.txt").write_text("b\n")
    run_git(wt.path, "add", "b.txt")
    run_git(wt.path, "commit", "-q", "-m", "no trailer here\n\n---\nOpus-Job: 7")
    theirs = run_git(wt.path, "rev-parse", "HEAD")
    assert not is_own_commit(wt.path, theirs)
    assert [c.sha for c in foreign_commits(wt.path, theirs, "main")] == [theirs]
    common = Path(run_git(wt.path, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    with (common / "opus-commits").open("a") as record:
        record.write(theirs + "\n")
    assert is_own_commit(wt.path, theirs)
    assert foreign_commits(wt.path, theirs, "main") == []
