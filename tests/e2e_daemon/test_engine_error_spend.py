"""What a stage spent before an API error is counted once, across the job process.

The daemon runs the job in a job process with the real `anthropic` engine: the coder's
first conversation is answered twice (billed), then gets a 500. The job goes back to the
queue and is run again; the registry the daemon shares, and `opus status`, show the
billed calls once, and the retry only adds its own.
"""

from __future__ import annotations

from typing import Any

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, scripted_reply
from tests.e2e_daemon.harness import Daemons, Workspace
from tests.e2e_daemon.spend import cut_coder_counted_once
from tests.standins.messages_api import ApiError, MessagesAPI, reply, server_error, tool_use


def test_spend_before_an_api_error_counts_once_across_the_job_process(
    ws: Workspace, agency: Agency, api: MessagesAPI, daemons: Daemons
) -> None:
    billed: list[str] = []  # the ids of the replies the failing conversation got

    def coder(body: dict[str, Any]) -> dict[str, Any] | ApiError:
        if agency.count("FR-1", "coder") > 1:
            return scripted_reply("FR-1", "coder", body)
        if len(body["messages"]) >= 5:  # the third call of the conversation
            return server_error()
        answer = reply(tool_use("bash", {"command": f"echo turn {len(body['messages'])}"}))
        billed.append(answer["id"])
        return answer

    agency.overrides[("FR-1", "coder")] = coder
    ws.write_fr("FR-1")
    daemons.start(ws)
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)

    assert agency.count("FR-1", "coder") == 2
    assert len(billed) == 2
    # Every billed reply (the failed conversation's and the retry's) counted once.
    cut_coder_counted_once(ws, api, job, billed)
