"""A job process SIGKILLed mid-stage keeps what its billed calls spent, once.

A real daemon runs the job in its job process with the real `anthropic` engine. The
coder's first conversation is answered N times (billed); the N-th answer runs a long
`sleep` (marked, so it is found in /proc), and while it runs the job process is SIGKILLed:
no handler, no unwinding, nothing of the stage is written after. The daemon hands the job
back and resumes it at the coder. The registry it shares, and `opus status`, count the N
calls once; and a job whose killed attempt reached its budget ceiling is stopped by it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from opus.domain import JobState
from opus.engines.pricing import cost_usd
from tests.e2e_daemon.agency import Agency, scripted_reply
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.spend import MODEL, cut_coder_counted_once
from tests.e2e_daemon.stopping import job_processes, sleeps, token
from tests.standins.billing import billed_usage
from tests.standins.messages_api import MessagesAPI, reply, tool_use

BILLED_CALLS = 3


@pytest.fixture
def mark() -> Iterator[str]:
    """The marker of the killed coder's `sleep`; any left over is killed at the end."""
    value = token()
    try:
        yield value
    finally:
        for pid in sleeps(value):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _killed_coder(
    agency: Agency, mark: str, billed: list[str], *, sleep_output: bool = False
) -> Any:
    """A coder whose first conversation makes `BILLED_CALLS` calls, the last one starting
    the marked sleep (with all `max_tokens` as output when `sleep_output`); later
    conversations are the scripted coder's. The ids of its replies go to `billed`."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if agency.count("FR-1", "coder") > 1:
            return scripted_reply("FR-1", "coder", body)
        call = len(body["messages"]) // 2 + 1
        if call < BILLED_CALLS:
            answer = reply(tool_use("bash", {"command": f"echo call {call}"}))
        else:
            usage = {"output_tokens": body["max_tokens"]} if sleep_output else None
            answer = reply(tool_use("bash", {"command": f"m=61.; sleep ${{m}}{mark}"}),
                           usage=usage)  # fmt: skip
        billed.append(answer["id"])
        return answer

    return respond


def _kill_the_job_process(ws: Workspace, mark: str) -> None:
    wait_until(lambda: sleeps(mark), "the coder's last billed call to start its sleep", 60)
    [pid] = wait_until(lambda: job_processes(ws.root), "the job process")
    os.kill(pid, signal.SIGKILL)


def test_the_billed_calls_of_a_killed_job_process_count_once_after_the_resume(
    ws: Workspace, agency: Agency, api: MessagesAPI, daemons: Daemons, mark: str
) -> None:
    billed: list[str] = []
    agency.overrides[("FR-1", "coder")] = _killed_coder(agency, mark, billed)
    ws.write_fr("FR-1")
    daemons.start(ws)
    _kill_the_job_process(ws, mark)
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)

    assert agency.count("FR-1", "coder") == 2, "the killed coder's stage ran again"
    assert len(billed) == BILLED_CALLS
    # Every billed reply (the killed conversation's and the resumed stages') counted once.
    cut_coder_counted_once(ws, api, job, billed)


def test_a_ceiling_reached_by_a_killed_attempt_stops_the_resumed_job(
    ws: Workspace, agency: Agency, api: MessagesAPI, daemons: Daemons, mark: str
) -> None:
    # The planner's call costs about a cent; the coder's last call (8,192 output tokens)
    # about twelve: the killed attempt passes the ceiling, the planner alone does not.
    ceiling = 0.1
    ws.write_config(budget={"job_usd": ceiling})
    billed: list[str] = []
    agency.overrides[("FR-1", "coder")] = _killed_coder(agency, mark, billed, sleep_output=True)
    ws.write_fr("FR-1")
    daemons.start(ws)
    _kill_the_job_process(ws, mark)
    job = ws.wait_state("FR-1", JobState.FAILED, JobState.AWAITING_REVIEW, timeout_s=90)

    total = cost_usd(MODEL, billed_usage(api.replies))
    planner = cost_usd(MODEL, billed_usage(api.replies[:1]))
    assert planner < ceiling < total
    assert job.state is JobState.FAILED, f"the resumed job ran on: {job.state.value}"
    assert job.error is not None and "reached its ceiling" in job.error
    assert agency.count("FR-1", "coder") == 1, "the resumed job called the coder again"
    assert job.cost_usd == pytest.approx(total)
