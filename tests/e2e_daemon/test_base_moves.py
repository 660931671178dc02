"""The real daemon on a PR whose base moved with a conflicting commit (local provider, a
bare remote): it merges the base into the branch, the coder resolves the conflict, the
tests pass and the merge commit is pushed as a fast-forward — and a SIGKILL during that
round's coder resumes the round instead of starting a second one."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from opus.domain import JobState
from tests.conftest import run_git
from tests.e2e_daemon.agency import Agency, file_for
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until


def _remote_head(ws: Workspace, branch: str) -> str:
    return run_git(ws.root / "remote.git", "rev-parse", f"refs/heads/{branch}")


def _push_to_main(ws: Workspace, name: str, text: str, message: str) -> str:
    clone = ws.root / "someone"
    run_git(ws.root, "clone", "-q", str(ws.root / "remote.git"), str(clone))
    (clone / name).write_text(text)
    run_git(clone, "add", "-A")
    run_git(clone, "commit", "-q", "-m", message)
    run_git(clone, "push", "-q", "origin", "main")
    return run_git(clone, "rev-parse", "HEAD")


def _parents(remote: Path, sha: str) -> list[str]:
    return run_git(remote, "log", "-1", "--format=%P", sha).split()


def test_a_conflicting_base_is_merged_resolved_and_pushed_across_a_sigkill(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    ws.write_config(pr={"provider": "local", "poll_s": 0.3})
    first = daemons.start(ws)
    ws.write_fr("FR-1")
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
    assert job.branch
    delivered = _remote_head(ws, job.branch)
    gate = threading.Event()
    agency.hold("FR-1", "coder", gate)

    base = _push_to_main(ws, file_for("FR-1"), "written on main first\n", "Claim the file")

    # The conflict round's coder is at work when the daemon dies without a word.
    wait_until(lambda: ("FR-1", "coder") in agency.waiting, "the conflict round's coder")
    assert agency.count("FR-1", "coder") == 2
    first.stop(signal.SIGKILL, timeout_s=10)
    gate.set()
    daemons.start(ws)

    remote = ws.root / "remote.git"

    def pushed() -> str | None:
        sha = _remote_head(ws, job.branch or "")
        return sha if sha != delivered else None

    head = wait_until(pushed, "the merge to be pushed", timeout_s=90)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
    assert set(_parents(remote, head)) == {delivered, base}  # one merge commit, fast-forward
    assert run_git(remote, "show", f"{head}:{file_for('FR-1')}") == "FR-1"
    now = ws.job("FR-1")
    assert now is not None and now.iteration == 2 and now.error is None
    assert agency.count("FR-1", "coder") == 3  # the killed conversation, then the resumed one
    assert agency.count("FR-1", "planner") == 1
    rounds = [e for e in ws.store.events(now.id) if e.kind == "conflict_round"]
    assert len(rounds) == 1
