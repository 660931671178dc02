"""A stage with no agent activity is stuck: the user is told, it is retried once, then fails."""

from __future__ import annotations

import threading

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink

IDLE_LIMIT_S = 2.0
"""Above a cold job process's first API call on a busy machine, so the planner is not stuck."""
HELD_S = 5.0
"""How long the stand-in sits on the coder's request: past the idle limit, but bounded."""


def test_stuck_coder_is_retried_once_then_fails(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink
) -> None:
    ws.write_config(notify={"urls": [sink.url]})
    agency.hold("FR-1", "coder", threading.Event(), limit_s=HELD_S)
    ws.write_fr("FR-1")
    daemons.start(ws, env={"OPUS_PIPELINE__STAGE_IDLE_S": str(IDLE_LIMIT_S)})

    def stuck_notices() -> list[str]:
        return [m["title"] for m in sink.received if "FR-1 stuck" in m.get("title", "")]

    wait_until(stuck_notices, "the first 'stuck' notification")
    job = ws.wait_state("FR-1", JobState.FAILED, timeout_s=20)
    assert job.error and "stuck twice" in job.error and "no agent activity" in job.error
    wait_until(lambda: len(stuck_notices()) == 2, "the second 'stuck' notification")
    failed = wait_until(
        lambda: [m for m in sink.received if "FR-1 failed" in m.get("title", "")],
        "the failure notification",
    )
    assert "stuck" in failed[0]["message"]

    # Retried from its checkpoint: the plan was kept, only the stuck coder ran again.
    assert agency.count("FR-1", "planner") == 1
    assert agency.count("FR-1", "coder") == 2
    assert ws.completed_stages("FR-1") == ["plan"]
    kinds = [event.kind for event in ws.store.events(job.id)]
    assert kinds.count("stuck") == 2 and kinds.count("released") == 1
