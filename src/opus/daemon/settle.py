"""What a finished worker means for its job: delivered, handed back, retried or failed.

The executor writes terminal outcomes itself (delivered, failed for the FR's own
reasons). What comes here is the rest: a job stopped by shutdown or preemption goes
back to the queue; a stuck one is retried once from its checkpoint; an infrastructure
error counts against a circuit breaker and the job is handed back, up to a limit. A key
or account the model API refuses is no job's fault: the job is handed back uncounted and
the engine's breaker opens at once, with one notification saying what to fix. A
registry conflict that outlived the registry's own retries hands the job back and counts
against the database's breaker (designs/registry.md, "Conflicts are not outages").
"""

from __future__ import annotations

import logging

from opus.control import remove_worktree
from opus.daemon.breaker import CircuitBreaker, database_key, engine_key, repo_key
from opus.daemon.workers import Finished
from opus.delivery.reactions import quiet_delivery
from opus.domain import Job, JobState
from opus.errors import EngineAccessDenied, EngineError, OpusError, StoreConflict, StoreError
from opus.forges.http import RateLimited
from opus.notify import breaker_opened, engine_refused, job_failed, pr_opened
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
        if not isinstance(item.error, StoreError):
            # The run's registry transactions went through (conflicts a retry fixed
            # included): the database is fine.
            self._success(database_key(self.ctx.settings.database_url))
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
            # Not the job's fault: back to the queue, no count toward failing it.
            report = self.conflict(item.error)
            self.ctx.store.release(job.id, self.worker_id)
            self.ctx.store.add_event(job.id, "released", report)
        elif isinstance(item.error, EngineAccessDenied):
            self._access_denied(job, item.error)
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

    def _access_denied(self, job: Job, error: EngineAccessDenied) -> None:
        # Every job would meet the same refusal: stop claiming now, not after N jobs, and
        # do not count it toward failing this one (`infra_failures`).
        key = engine_key(self.ctx.settings.agents.engine)
        self.ctx.store.release(job.id, self.worker_id)
        self.ctx.store.add_event(job.id, "access_denied", f"{error}")
        if self.breaker.trip(key, str(error)):
            log.error("circuit breaker %s opened: %s", key, _first_line(str(error)))
            self.ctx.notifier.notify(*engine_refused(key, str(error), self.breaker.cooldown_s))

    def _stuck(self, job: Job, reason: str) -> None:
        retries = int(job.spec.get("stuck_retries", 0))
        if retries >= 1:
            self._fail(job, f"stuck twice: {reason}")
            return
        store = self.ctx.store
        store.update(job.id, spec={**job.spec, "stuck_retries": retries + 1})
        store.release(job.id, self.worker_id)
        store.add_event(job.id, "released", f"{reason}; retrying once from the last checkpoint")

    def conflict(self, error: StoreConflict) -> str:
        """Count a registry conflict that survived every retry against the database's
        breaker; returns what to tell (which database, what to look at there).

        Every registry transaction runs again on a conflict (`registry/conflicts.py`), so
        one that reaches the daemon collided each time: something in that database keeps
        aborting opus's transactions, and claiming more work would only meet it again.
        """
        key = database_key(self.ctx.settings.database_url)
        report = persistent_conflict(key, error)
        log.error("%s", report)
        self._count(key, report)
        return report

    def _count(self, key: str, error: str) -> None:
        if self.breaker.record_failure(key, error):
            log.error("circuit breaker %s opened after %d failures in a row; retrying in %.0fs",
                      key, self.breaker.failures, self.breaker.cooldown_s)
            self.ctx.notifier.notify(
                *breaker_opened(key, self.breaker.failures, self.breaker.cooldown_s)
            )

    def _infra_failure(self, job: Job, error: Exception) -> None:
        store = self.ctx.store
        engine = isinstance(error, EngineError)
        key = engine_key(self.ctx.settings.agents.engine) if engine else repo_key(job.repo)
        log.warning("%s: infrastructure error (%s): %s", job.fr_id, key, _first_line(str(error)))
        self._count(key, str(error))
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


def persistent_conflict(key: str, error: StoreConflict) -> str:
    """What to say about a conflict that survived every retry, naming the database and
    what to look at there."""
    where = key.removeprefix("database:")
    return (
        f"the registry database ({where}) keeps aborting opus's transactions: {error}. "
        "Look there for a transaction that stays open or holds locks on the opus tables "
        "(pg_stat_activity: state 'idle in transaction', old xact_start; pg_locks: not "
        "granted), and check that default_transaction_isolation is 'read committed'"
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no reason given)"
