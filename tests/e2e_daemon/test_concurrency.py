"""Discovery and concurrency: saved notes wake an idle daemon, and three pipelines run at
once, each in its own worktree, none touching another's files.

The poll delays are 30 s here, so only the file watcher waking the loop explains FRs
picked up within seconds. (Latency figures: bench/daemon_bench.py.)
"""

from __future__ import annotations

import threading

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, file_for
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.sdnotify_socket import notify_socket

FRS = ("FR-A", "FR-B", "FR-C")
SLOW_POLL = {"poll_active_s": 30, "poll_idle_s": 30, "max_concurrent": 3}


def test_saved_notes_wake_the_daemon_and_run_in_parallel(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    ws.write_config(daemon=SLOW_POLL)
    all_in = threading.Event()
    with notify_socket() as sd:
        daemons.start(ws, env={"NOTIFY_SOCKET": str(sd.path)})
        ready = sd.wait_for("READY=1")
        sd.wait_for("STATUS=0 running, 0 queued", after=ready + 1)  # first pass done; asleep

        for fr_id in FRS:
            agency.hold(fr_id, "coder", all_in)
            ws.write_fr(fr_id)
        wait_until(lambda: all(ws.job(fr_id) for fr_id in FRS), "the FRs to be enqueued", 3)

    # Every coder is in flight at the same moment: the three run at once.
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
