"""A model that reached its end of life: the job fails once, saying which key to change.

The stand-in answers the model as the API answers a retired one (404 `not_found_error`,
"model: <id>"); the daemon, its job process and the real engine do the rest.
"""

from __future__ import annotations

import anthropic._data

from opus.daemon.logs import log_path
from opus.domain import JobState
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink
from tests.standins.messages_api import MessagesAPI

RETIRED = "claude-sonnet-4-5"
"""Deprecated in the installed SDK (end of life 2026-11-30), retired at the stand-in."""


def test_a_retired_model_fails_the_job_once_naming_the_key(
    ws: Workspace, daemons: Daemons, api: MessagesAPI, sink: Sink
) -> None:
    api.retired_models.add(RETIRED)
    ws.write_config(notify={"urls": [sink.url]}, agents={"max_retries": 0, "model": RETIRED})
    ws.write_fr("FR-1")
    daemon = daemons.start(ws)

    job = ws.wait_state("FR-1", JobState.FAILED)
    assert job.error is not None
    assert f"does not know the model {RETIRED}" in job.error, job.error
    assert "config key `agents.model`" in job.error and "claude-sonnet-4-6" in job.error
    failed = wait_until(
        lambda: [m for m in sink.received if "FR-1 failed" in m.get("title", "")],
        "the failure notification",
    )
    assert "config key `agents.model`" in failed[0]["message"]
    # Failed at once: one planner call, no infrastructure error, no release and retry.
    assert [body["model"] for body in api.bodies] == [RETIRED]
    kinds = [event.kind for event in ws.store.events(job.id)]
    assert "error" not in kinds and "released" not in kinds, kinds
    assert kinds.count("failed") == 1, kinds

    # The job's log said once what the SDK knew before the API refused it.
    lines = log_path(ws.root / ".opus", job.id).read_text().splitlines()
    warned = [line for line in lines if "is deprecated" in line]
    assert len(warned) == 1, lines
    assert "warning: config key `agents.model`" in warned[0]
    assert anthropic._data.DEPRECATED_MODELS[RETIRED] in warned[0]
    assert "DeprecationWarning" not in daemon.output, daemon.output
