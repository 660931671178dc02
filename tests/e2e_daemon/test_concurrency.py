"""Three pipelines at once, each in its own worktree, none touching another's files."""

from __future__ import annotations

import threading

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, file_for
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until

FRS = ("FR-A", "FR-B", "FR-C")


def test_three_pipelines_overlap_without_sharing_files(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    ws.write_config(daemon={"max_concurrent": 3})
    all_in = threading.Event()
    for fr_id in FRS:
        agency.hold(fr_id, "coder", all_in)
        ws.write_fr(fr_id)
    daemons.start(ws)

    # Every coder is in flight at the same moment: the three ran at once.
    everyone = {(fr_id, "coder") for fr_id in FRS}
    wait_until(lambda: everyone <= agency.waiting, "all three coders waiting together")
    all_in.set()

    jobs = [ws.wait_state(fr_id, JobState.AWAITING_REVIEW) for fr_id in FRS]
    assert len({job.branch for job in jobs}) == 3
    for fr_id, job in zip(FRS, jobs, strict=True):
        assert ws.branch_files(fr_id) == {file_for(fr_id)}
        worktree = ws.root / ".opus" / "worktrees" / f"job-{job.id}"
        assert sorted(p.name for p in worktree.iterdir() if p.name != ".git") == sorted(
            ["README.md", file_for(fr_id)]
        )
        assert agency.count(fr_id, "coder") == 1
