"""Rate limits and refusals on real jobs: the PR poller pauses for a limit instead of
sleeping in a request and stops asking about a PR the forge keeps refusing; a limit hit
while delivering is waited out, never counted as a failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opus.daemon.breaker import CircuitBreaker, repo_key
from opus.daemon.review_poll import MAX_REFUSALS, ReviewPoller
from opus.daemon.settle import MAX_INFRA_FAILURES, Settler
from opus.daemon.workers import Finished
from opus.domain import Job, JobState
from opus.forges.http import RateLimited, rate_waits
from opus.pipeline.context import JobControl
from opus.pipeline.executor import Outcome, run_job
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import GREET_V1, TOKEN_ENV, WORKER, Bench, make_bench
from tests.standins.forge import ForgeStandin


def _delivered(tmp_path: Path, forge: ForgeStandin) -> tuple[Bench, Job]:
    bench = make_bench(tmp_path, pr=forge_config(forge), rounds=(GREET_V1,))
    bench.write_fr()
    job = bench.enqueue()
    outcome = bench.work()
    assert isinstance(outcome, Outcome) and outcome.kind == "awaiting_review"
    return bench, bench.store.get(job.id)


def test_a_rate_limit_pauses_polling_until_it_lifts(tmp_path: Path) -> None:
    with ForgeStandin("github") as forge, pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, forge.token)
        bench, job = _delivered(tmp_path, forge)
        poller = ReviewPoller(lambda: bench.ctx, poll_s=5)
        forge.primary_limit(for_s=900)
        asked = len(forge.requests)

        started = time.monotonic()
        pause = poller.poll_once()
        took = time.monotonic() - started

        print(f"a pass against a 900 s limit took {took:.2f} s and pauses {pause:.0f} s")
        assert 850 < pause <= 902  # until the reset the forge announced
        assert took < 5  # not slept inside the request
        assert len(forge.requests) == asked + 1  # the first refusal ended the pass
        assert bench.store.get(job.id).state is JobState.AWAITING_REVIEW


def test_a_pr_the_forge_keeps_refusing_is_left_alone(
    tmp_path: Path, forge: ForgeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, job = _delivered(tmp_path, forge)
    poller = ReviewPoller(lambda: bench.ctx, poll_s=5)
    monkeypatch.setenv(TOKEN_ENV, "revoked")  # every request now answers 401

    for _ in range(MAX_REFUSALS):
        poller.poll_once()
    asked = len(forge.requests)
    poller.poll_once()

    assert len(forge.requests) == asked  # no fourth try
    assert poller.refusals == {job.id: MAX_REFUSALS}
    events = [e for e in bench.store.events(job.id) if e.kind == "forge_refused"]
    assert len(events) == 1 and "401" in events[0].message
    assert bench.store.get(job.id).state is JobState.AWAITING_REVIEW


def test_a_rate_limit_during_delivery_never_fails_the_job(tmp_path: Path) -> None:
    with ForgeStandin("github") as forge, pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, forge.token)
        bench = make_bench(tmp_path, pr=forge_config(forge), rounds=(GREET_V1,) * 8)
        bench.write_fr()
        job = bench.enqueue()
        forge.primary_limit(for_s=3600)
        breaker = CircuitBreaker(failures=3, cooldown_s=600, clock=bench.ctx.clock)
        settle = Settler(bench.ctx, breaker, WORKER)
        for _ in range(MAX_INFRA_FAILURES + 2):
            claimed = bench.store.claim(WORKER, 60)
            assert claimed is not None
            # rate_waits(0): each real try first waits up to 8 min inside its requests.
            with rate_waits(0), pytest.raises(RateLimited) as limited:
                run_job(claimed, bench.ctx, JobControl(claimed.id))
            settle(Finished(claimed, Outcome("stopped", "error"), limited.value))

        assert bench.store.get(job.id).state is JobState.QUEUED
        assert breaker.state(repo_key(job.repo)) == "closed"
        limited_events = [e for e in bench.store.events(job.id) if e.kind == "rate_limited"]
        assert len(limited_events) == MAX_INFRA_FAILURES + 2

        forge.limit = None  # the hour is over
        outcome = bench.work()
        assert isinstance(outcome, Outcome) and outcome.kind == "awaiting_review"
        assert len(forge.prs) == 1
