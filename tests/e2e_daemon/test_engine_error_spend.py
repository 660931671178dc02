"""What a stage spent before an API error is counted once, across the job process.

The daemon runs the job in a job process with the real `anthropic` engine: the coder's
first conversation is answered twice (billed), then gets a 500. The job goes back to the
queue and is run again; the registry the daemon shares, and `opus status`, show the
billed calls once, and the retry only adds its own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from opus.config import AgentsConfig
from opus.domain import JobState, Stage
from opus.engines.pricing import cost_usd
from tests.e2e_daemon.agency import Agency, scripted_reply
from tests.e2e_daemon.harness import Daemons, Workspace
from tests.standins.billing import billed_usage
from tests.standins.messages_api import ApiError, MessagesAPI, reply, server_error, tool_use

MODEL = AgentsConfig().model


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
    spent = billed_usage([r for r in api.replies if r["id"] in billed])
    runs = ws.store.stage_runs(job.id)
    [failed] = [run for run in runs if not run.ok]
    assert (failed.stage, failed.usage) == (Stage.CODE, spent)
    assert failed.cost_usd == pytest.approx(cost_usd(MODEL, spent)) and failed.cost_usd > 0
    # Every billed reply (the failed conversation's and the retry's) counted once.
    total = cost_usd(MODEL, billed_usage(api.replies))
    assert job.cost_usd == pytest.approx(total)
    assert sum(run.cost_usd for run in runs) == pytest.approx(total)
    code, shown = ws.cli("status", "--json")
    assert code == 0, shown
    budget = json.loads(shown)["budget"]
    assert budget["spent_today_usd"] == pytest.approx(total, abs=1e-4)
