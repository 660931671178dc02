"""A saved planned FR wakes an idle daemon at once, and the queue keeps moving.

The poll delays are 30 s here, so only wake-ups (the file watcher; a worker finishing)
can explain a job picked up and the next one started within seconds. (Latency figures:
bench/daemon_bench.py.)
"""

from __future__ import annotations

from opus.domain import JobState
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.sdnotify_socket import notify_socket

SLOW_POLL = {"poll_active_s": 30, "poll_idle_s": 30, "max_concurrent": 1}


def test_saved_note_wakes_the_idle_daemon(ws: Workspace, daemons: Daemons) -> None:
    ws.write_config(daemon=SLOW_POLL)
    with notify_socket() as sd:
        daemons.start(ws, env={"NOTIFY_SOCKET": str(sd.path)})
        ready = sd.wait_for("READY=1")
        sd.wait_for("STATUS=0 running, 0 queued", after=ready + 1)  # first pass done; asleep

        ws.write_fr("FR-1")
        ws.write_fr("FR-2")
        wait_until(lambda: ws.job("FR-1") and ws.job("FR-2"), "both FRs enqueued", 3)

    # One slot: FR-2 starts when FR-1 ends, not at the next 30 s poll.
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=8)
    ws.wait_state("FR-2", JobState.AWAITING_REVIEW, timeout_s=8)
