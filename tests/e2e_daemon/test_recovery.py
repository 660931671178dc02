"""SIGKILL mid-pipeline, restart, and the notifications a user gets along the way (SPEC §2, §8)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink

ALL_STAGES = ["plan", "code", "test", "review", "deliver"]


def _titled(sink: Sink, words: str) -> list[dict[str, Any]]:
    return [message for message in sink.received if words in message.get("title", "")]


def test_kill_and_restart_resume_without_rerunning_stages(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink
) -> None:
    ws.write_config(notify={"urls": [sink.url]}, pipeline={"max_iterations": 1})
    coder_gate = threading.Event()
    agency.hold("FR-1", "coder", coder_gate)
    ws.write_fr("FR-1")
    ws.write_fr("FR-2", test_command="echo 'expected 2, got 3' && false")
    first = daemons.start(ws)

    # FR-2's tests fail: the user hears it failed, and why.
    failed = ws.wait_state("FR-2", JobState.FAILED)
    assert failed.error and "no passing round after 1 iteration" in failed.error
    notice = wait_until(lambda: _titled(sink, "FR-2 failed"), "the failure notification")[0]
    assert "expected 2, got 3" in notice["message"]

    # FR-1 is in its coder (plan done) when the daemon dies without a word.
    wait_until(lambda: ("FR-1", "coder") in agency.waiting, "FR-1's coder to be waiting")
    assert ws.completed_stages("FR-1") == ["plan"]
    first.stop(signal.SIGKILL, timeout_s=10)
    coder_gate.set()
    assert ws.job("FR-1").state is JobState.RUNNING  # type: ignore[union-attr]

    daemons.start(ws)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
    recovered = wait_until(lambda: _titled(sink, "recovered 1 job"), "the recovery notification")
    assert len(recovered) == 1
    wait_until(lambda: _titled(sink, "FR-1 ready for review"), "the PR-opened notification")

    assert ws.completed_stages("FR-1") == ALL_STAGES
    # The planner ran once; only the coder, killed before it completed, ran again.
    assert agency.count("FR-1", "planner") == 1
    assert agency.count("FR-1", "coder") == 2
    assert agency.count("FR-1", "reviewer") == 1
    assert ws.branch_files("FR-1") == {"fr-1.txt"}
