"""What a finished worker means for its job: delivered, handed back, retried or failed.

The executor writes terminal outcomes itself (delivered, failed for the FR's own
reasons). What comes here is the rest: a job stopped by shutdown or preemption goes
back to the queue; a stuck one is retried once from its checkpoint; an infrastructure
error counts against a circuit breaker and the job is handed back, up to a limit.
"""

from __future__ import annotations

import logging

from opus.control import remove_worktree
from opus.daemon.breaker import CircuitBreaker, engine_key, repo_key
from opus.daemon.workers import Finished
from opus.delivery.reactions import quiet_delivery
from opus.domain import Job, JobState
from opus.errors import EngineError, OpusError, StoreConflict
from opus.forges.http import RateLimited
from opus.notify import breaker_opened, job_failed, pr_opened
from opus.pipeline.context import PipelineContext

log = logging.getLogger(__name__)

MAX_INFRA_FAILURES = 5
"""Infrastructure errors in a row after which a job fails instead of waiting again."""


class Settler:
    """Applies the meaning of finished workers to the registry (one loop turn's worth)."""

    def __init__(self, ctx: PipelineContext, breaker: CircuitBreaker, worker_id: str) -> None:
        self.ctx = ctx
        self.breaker = breaker
        self.worker_id = worker_id

    def __repr__(self) -> str:
        return f"Settler(worker={self.worker_id})"

    def __call__(self, item: Finished) -> None:
        store = self.ctx.store
        job, outcome = store.get(item.job.id), item.outcome
        if outcome.kind == "awaiting_review":
            self._success(repo_key(job.repo))
            self._success(engine_key(self.ctx.settings.agents.engine))
            if not quiet_delivery(job.spec):
                self.ctx.notifier.notify(*pr_opened(job.fr_id, job.title, outcome.detail))
        elif outcome.kind == "stopped" and job.state is JobState.RUNNING:
            self._stopped(job, outcome.detail, item)
        if store.get(job.id).state in (JobState.FAILED, JobState.CANCELLED):
            # The job ended: its worktree goes, its branch stays (`opus retry` rebuilds it).
            try:
                remove_worktree(self.ctx.settings, job)
            except OpusError as exc:
                log.warning("could not remove the worktree of %s: %s", job.fr_id, exc)

    def _success(self, key: str) -> None:
        was = self.breaker.state(key)
        self.breaker.record_success(key)
        if was != "closed":
            log.warning("circuit breaker %s closed again after a success", key)

    def _stopped(self, job: Job, reason: str, item: Finished) -> None:
        if isinstance(item.error, RateLimited):
            self._rate_limited(job, item.error)
        elif isinstance(item.error, StoreConflict):
            # Two daemons' transactions collided past the registry's retries: nobody's
            # fault and nothing broken, so no breaker and no count toward failing the job.
            self.ctx.store.release(job.id, self.worker_id)
            self.ctx.store.add_event(job.id, "released", f"{item.error}")
        elif item.error is not None and not item.error.retryable:
            # No retry can heal it (a missing remote, a bad config): fail now, no breaker.
            self._fail(job, str(item.error))
        elif item.error is not None:
            self._infra_failure(job, item.error)
        elif reason.startswith("stuck"):
            self._stuck(job, reason)
        else:
            self.ctx.store.release(job.id, self.worker_id)
            self.ctx.store.add_event(job.id, "released", reason)

    def _rate_limited(self, job: Job, error: RateLimited) -> None:
        # The forge asked to wait: no failure of the repo or the job. Each try has waited
        # inside its requests already (forges/http.py), so retrying is never quick.
        self.ctx.store.release(job.id, self.worker_id)
        self.ctx.store.add_event(job.id, "rate_limited", f"{error}; retrying when it lifts")

    def _stuck(self, job: Job, reason: str) -> None:
        retries = int(job.spec.get("stuck_retries", 0))
        if retries >= 1:
            self._fail(job, f"stuck twice: {reason}")
            return
        store = self.ctx.store
        store.update(job.id, spec={**job.spec, "stuck_retries": retries + 1})
        store.release(job.id, self.worker_id)
        store.add_event(job.id, "released", f"{reason}; retrying once from the last checkpoint")

    def _infra_failure(self, job: Job, error: Exception) -> None:
        store = self.ctx.store
        engine = isinstance(error, EngineError)
        key = engine_key(self.ctx.settings.agents.engine) if engine else repo_key(job.repo)
        log.warning("%s: infrastructure error (%s): %s", job.fr_id, key, _first_line(str(error)))
        if self.breaker.record_failure(key, str(error)):
            log.error("circuit breaker %s opened after %d failures in a row; retrying in %.0fs",
                      key, self.breaker.failures, self.breaker.cooldown_s)
            self.ctx.notifier.notify(
                *breaker_opened(key, self.breaker.failures, self.breaker.cooldown_s)
            )
        failures = int(job.spec.get("infra_failures", 0)) + 1
        store.add_event(job.id, "error", str(error))
        if failures >= MAX_INFRA_FAILURES:
            self._fail(job, f"{failures} infrastructure errors in a row; the last: {error}")
            return
        store.update(job.id, spec={**job.spec, "infra_failures": failures})
        store.release(job.id, self.worker_id)

    def _fail(self, job: Job, error: str) -> None:
        log.warning("%s failed: %s", job.fr_id, _first_line(error))
        self.ctx.store.transition(job.id, JobState.FAILED, error=error)
        self.ctx.store.add_event(job.id, "failed", error)
        self.ctx.notifier.notify(*job_failed(job.fr_id, error))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no reason given)"
