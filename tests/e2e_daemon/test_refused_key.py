"""The API refuses opus's key: no job is failed, claiming stops with one notification that
says what to fix, and work resumes by itself once the key works again.

A real daemon (`opus run`, its job processes and the real `anthropic` engine) against the
Messages API stand-in, which answers a key it does not accept as the API does (401
`authentication_error`, "invalid x-api-key"), and a loopback sink for apprise's json://.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink
from tests.standins.messages_api import API_KEY, MessagesAPI, invalid_request

COOLDOWN_S = 2.0


def test_a_revoked_key_pauses_claiming_until_it_works_again(
    ws: Workspace, daemons: Daemons, api: MessagesAPI, sink: Sink
) -> None:
    api.api_key = "sk-ant-rotated"  # the key the daemon sends no longer works
    ws.write_config(notify={"urls": [sink.url]}, agents={"max_retries": 2},
                    daemon={"breaker_cooldown_s": COOLDOWN_S})
    ws.write_fr("FR-1")
    started = time.monotonic()
    daemons.start(ws)

    # One notification, naming the problem and the fix.
    paused = wait_until(lambda: _breaker_messages(sink), "the breaker notification")
    assert "refused opus's key" in paused[0]["title"], paused
    body = paused[0]["message"]
    assert "HTTP 401 authentication_error: invalid x-api-key" in body, body
    assert "ANTHROPIC_API_KEY is invalid, revoked or expired" in body
    assert "No job is failed for it" in body

    # The job waits in the queue; a trial after each cool-down is refused again.
    def refused_again() -> bool | None:
        job = ws.job("FR-1")
        queued = job is not None and job.state is JobState.QUEUED
        return (api.refused >= 3 and queued) or None

    wait_until(refused_again, "two trials after the cool-down, the job back in the queue")
    elapsed = time.monotonic() - started
    assert api.refused <= elapsed / COOLDOWN_S + 2, f"{api.refused} calls in {elapsed:.1f}s"
    _code, status = ws.cli("status")
    # Open, or half-open while a trial runs: either way with the API's refusal.
    assert "breaker   engine:anthropic" in status and "refused opus's key" in status, status

    api.api_key = API_KEY  # the key works again (its access restored)
    done = ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
    kinds = [event.kind for event in ws.store.events(done.id)]
    assert "failed" not in kinds and "error" not in kinds, kinds
    assert kinds.count("access_denied") >= 2, kinds
    assert "infra_failures" not in done.spec
    assert len(_breaker_messages(sink)) == 1, sink.received


def test_the_trial_jobs_first_answer_reopens_claiming_for_the_rest(
    ws: Workspace, daemons: Daemons, api: MessagesAPI, agency: Agency
) -> None:
    """Not one job per cool-down until the trial job ends: its first answered model call
    closes the engine's breaker, and a job queued meanwhile starts at once."""
    cooldown_s = 20.0
    api.api_key = "sk-ant-rotated"
    ws.write_config(daemon={"breaker_cooldown_s": cooldown_s, "max_concurrent": 2})
    ws.write_fr("FR-1")
    daemons.start(ws)
    wait_until(lambda: _queued_after_refusal(ws, api), "FR-1 refused and back in the queue")

    gate = threading.Event()  # FR-1, the trial, stays in its coder stage meanwhile
    agency.hold("FR-1", "coder", gate)
    api.api_key = API_KEY
    try:
        wait_until(lambda: agency.count("FR-1", "coder") or None, "the trial job at work",
                   timeout_s=cooldown_s + 30)
        ws.write_fr("FR-2")
        wait_until(lambda: agency.count("FR-2", "planner") or None, "FR-2 claimed",
                   timeout_s=cooldown_s)
        assert ("FR-1", "coder") in agency.waiting, "FR-1 has not ended"
    finally:
        gate.set()
    # Without the trial's answer, the breaker would let FR-2 through only a cool-down after
    # it let FR-1 through.
    trial, second = _claimed_at(ws, "FR-1")[-1], _claimed_at(ws, "FR-2")[0]
    assert (second - trial).total_seconds() < cooldown_s, (trial, second)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
    ws.wait_state("FR-2", JobState.AWAITING_REVIEW)


def _claimed_at(ws: Workspace, fr_id: str) -> list[datetime]:
    job = ws.job(fr_id)
    assert job is not None
    return [event.at for event in ws.store.events(job.id) if event.kind == "claimed"]


def _queued_after_refusal(ws: Workspace, api: MessagesAPI) -> bool | None:
    job = ws.job("FR-1")
    return (api.refused >= 1 and job is not None and job.state is JobState.QUEUED) or None


def test_run_once_with_a_bad_key_leaves_the_job_queued_for_the_next_run(
    ws: Workspace, daemons: Daemons, api: MessagesAPI
) -> None:
    ws.write_fr("FR-1")
    refused = daemons.start(ws, "--once", env={"ANTHROPIC_API_KEY": "sk-ant-typo"})
    assert refused.proc.wait(timeout=60) == 1, refused.output
    assert "left waiting because the circuit breaker for engine:anthropic is open: the " \
        "Anthropic API refused opus's key" in refused.output, refused.output
    job = ws.job("FR-1")
    assert job is not None and job.state is JobState.QUEUED and job.error is None
    assert api.refused == 1 and api.requests == []

    fixed = daemons.start(ws, "--once")
    assert fixed.proc.wait(timeout=60) == 0, fixed.output
    assert ws.wait_state("FR-1", JobState.AWAITING_REVIEW).id == job.id


def test_a_rejected_request_fails_the_job_once_with_the_apis_message(
    ws: Workspace, daemons: Daemons, api: MessagesAPI, agency: Agency, sink: Sink
) -> None:
    said = "messages.0.content.0.text: prompt contains an unsupported character"
    agency.overrides[("FR-1", "planner")] = lambda _body: invalid_request(said)
    ws.write_config(notify={"urls": [sink.url]}, agents={"max_retries": 2})
    ws.write_fr("FR-1")
    daemons.start(ws)

    job = ws.wait_state("FR-1", JobState.FAILED)
    assert job.error is not None and f"HTTP 400 invalid_request_error: {said}" in job.error
    assert "`opus retry`" in job.error, job.error
    failed = wait_until(
        lambda: [m for m in sink.received if "FR-1 failed" in m.get("title", "")],
        "the failure notification",
    )
    assert said in failed[0]["message"]
    assert len(api.requests) == 1, "neither the SDK nor the daemon sends it again"
    kinds = [event.kind for event in ws.store.events(job.id)]
    assert kinds.count("failed") == 1 and "released" not in kinds, kinds


def _breaker_messages(sink: Sink) -> list[dict[str, str]] | None:
    found = [m for m in sink.received if "paused engine:anthropic" in m.get("title", "")]
    return found or None
