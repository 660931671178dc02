"""The daemon: one loop that takes in notes, hands jobs to workers and watches them.

Each turn of the loop: intake (scan the vault, enqueue, write notes back), settle the
jobs that finished, supervise the running ones (leases, stuck stages, preemption),
claim new work while slots are free, and only then — the loop having shown itself
healthy — ping the systemd watchdog. It sleeps until a file event or the adaptive poll
delay, whichever comes first. The loop never waits on the network: open PRs are polled
by a `ReviewPoller` thread and notifications sent by the notifier's own thread.

Stopping (designs/jobs.md): SIGTERM stops every running stage now (its commands get
SIGTERM, then SIGKILL after `daemon.stop_grace_s`), puts the jobs back in the queue at
their last checkpoint and exits 0; a second SIGTERM or SIGINT kills them and exits at
once. `opus cancel` only marks the job (and rewrites the wake file): the loop sees it at
its next turn and kills the stage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from types import FrameType
from typing import Literal

from opus.daemon.breaker import CircuitBreaker, database_key, engine_key, repo_key
from opus.daemon.intake import Intake
from opus.daemon.polling import PollDelay
from opus.daemon.review_poll import ReviewPoller
from opus.daemon.runtime import Runtime
from opus.daemon.sdnotify import SystemdNotifier, WatchdogGate
from opus.daemon.settle import Settler
from opus.daemon.supervision import RunningSnapshot, preemption_victim, stuck_reason
from opus.daemon.watch import VaultWatcher, wake_watcher
from opus.daemon.workers import Finished, WorkerPool, job_logger
from opus.domain import Job, JobState
from opus.errors import StoreConflict, StoreError
from opus.forges.local import REVIEW
from opus.notify import (
    SEND_TIMEOUT_S,
    budget_hit,
    recovered,
    stage_stuck,
)
from opus.pipeline.context import PREEMPTED, JobControl
from opus.presence import Presence, daemon_info
from opus.trace import mark

log = logging.getLogger(__name__)

Role = Literal["all", "intake", "worker"]
FORK_SERVER_IDLE_S = 600.0
"""With no job for this long, the fork server is stopped (it restarts with the next job)."""
KILL_WAIT_S = 3.0
"""After the grace (and the SIGKILL that ends it), how long the loop waits for workers."""


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False


# States a job process sets itself at its end; it exits right after (see Daemon._lost).
ENDED_BY_ITS_PROCESS = frozenset(
    {JobState.FAILED, JobState.AWAITING_REVIEW, JobState.WAITING_INPUT, JobState.DONE}
)
WRAP_UP_S = 30.0


class Daemon:
    """`opus run`: intake and/or work, until SIGTERM (or, with `once`, until idle)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        role: Role = "all",
        once: bool = False,
        environ: Mapping[str, str] | None = None,
        reload: Callable[[], Runtime] | None = None,
    ) -> None:
        self.runtime = runtime
        self.ctx = runtime.ctx
        self._rebuild = reload
        self.role = role
        self.once = once
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        ctx = runtime.ctx
        settings = ctx.settings
        self.sd = SystemdNotifier(environ if environ is not None else os.environ)
        self.gate = WatchdogGate(self.sd.watchdog_interval_s())
        self.breaker = CircuitBreaker(
            failures=settings.daemon.breaker_failures,
            cooldown_s=settings.daemon.breaker_cooldown_s,
            clock=ctx.clock,
        )
        self.poll = PollDelay(settings.daemon.poll_active_s, settings.daemon.poll_idle_s)
        self.wake = threading.Event()
        self.reviews = ReviewPoller(lambda: self.ctx, poll_s=settings.pr.poll_s,
                                    on_change=self.wake.set)
        self.pool = WorkerPool(
            ctx, job_log=self._job_log, on_finish=self.wake.set, processes=runtime.own_engine
        )
        # A one-shot run acts on notes as they are; a serving daemon lets typing settle.
        self.intake = Intake(ctx, settle=not once) if role in ("all", "intake") else None
        self.flags = _Flags()
        self.presence = Presence(ctx.store, ctx.clock, daemon_id=self.worker_id, role=role,
                                 every_s=settings.daemon.heartbeat_s)
        self._claimed: set[int] = set()
        self._engine_trials: set[int] = set()
        """Jobs claimed while the engine's breaker was half-open: the first of them whose
        model call is answered closes it."""
        # Jobs whose process ended them itself, seen first at (monotonic): left to finish.
        self._wrapping_up: dict[int, float] = {}
        self._healthy = False
        self._turns = 0
        self._idle_since: float | None = None

    def __repr__(self) -> str:
        return f"Daemon(role={self.role}, worker={self.worker_id}, running={len(self.pool)})"

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        self._install_signals()
        self._recover()
        self.presence.start(self._presence_info())
        self._flush_notifications()  # what it owed when it died, before serving
        watchers = self._start_watchers()
        self.sd.ready(self._status_line())
        mark("ready")
        self.runtime.notifier.start()
        if self.intake is not None and not self.once:
            self.reviews.start()
        log.info("opus serving as %s (%s)", self.role, self.worker_id)
        if self.intake is not None and self.once:
            self.reviews.poll_once()  # decisions made while no daemon ran
        blocked = False
        try:
            while not self.flags.stop:
                if self.flags.reload:
                    self._reload()
                busy = self._turn()
                if self.once and self._once_finished():
                    blocked = self._once_blocked()
                    mark("once: all done")
                    break
                self._sleep(self._delay(busy))
        finally:
            try:
                # Watchers still run: the final intake reads changed notes, not the vault.
                self._shutdown()
            finally:
                self.presence.stop()
                self._stop_watchers(watchers)
        if self.once:
            return 1 if blocked or self._once_failed() else 0
        return 0

    def _delay(self, busy: bool) -> float:
        delay = self.poll.next_delay(busy)
        if len(self.pool):
            # Leases are renewed from this loop: wake in time to keep them.
            delay = min(delay, self.ctx.settings.daemon.heartbeat_s)
        if self.intake is not None and self.intake.due_in_s is not None:
            delay = min(delay, self.intake.due_in_s + 0.05)  # a settling note is due
        reopens = [c.reopens_in_s for c in self.breaker.open_circuits() if c.reopens_in_s > 0]
        if reopens and self.role != "intake":
            delay = min(delay, min(reopens) + 0.05)  # a breaker's trial is due
        return delay

    def _sleep(self, seconds: float) -> None:
        """Sleep until an event or `seconds`; ping the watchdog on the way if it falls due.

        A ping needs no turn: nothing changed, and a loop that reaches this point after
        a healthy turn is not wedged. After a failed turn it does not ping, so a failure
        that persists still ends in a restart by systemd.
        """
        deadline = self.ctx.clock.monotonic() + seconds
        while True:
            now = self.ctx.clock.monotonic()
            # Never sleep past the watchdog's due time, or systemd kills a healthy daemon.
            remaining = self.gate.remaining_s(now) if self._healthy else None
            timeout = deadline - now if remaining is None else min(deadline - now, remaining)
            if self.wake.wait(timeout=max(0.05, timeout)):
                self.wake.clear()
                self.poll.wake()
                return
            now = self.ctx.clock.monotonic()
            if self._healthy and self.gate.due(now):
                self.sd.watchdog()
            if now >= deadline:
                return

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.flags.stop:
            # The second stop signal: no grace, no settling; the next start recovers.
            log.warning("stopping at once: killing %d job(s)", len(self.pool))
            self.pool.kill_all()
            logging.shutdown()
            os._exit(128 + signum)
        self.flags.stop = True
        self.wake.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self.flags.reload = True
        self.wake.set()

    def _start_watchers(self) -> list[VaultWatcher]:
        watchers = [wake_watcher(self.ctx.settings.state_dir, self.wake)]
        vault: VaultWatcher | None = None
        if self.intake is not None:
            vault = VaultWatcher(self.ctx.vault_root, self.wake, on_changes=self._notes_changed)
            watchers.append(vault)
        for watcher in watchers:
            watcher.start(wait=False)
        for watcher in watchers:
            watcher.wait_ready()
        if self.intake is not None and vault is not None:
            self.intake.watching = vault.alive  # changed paths only while it watches
            self.intake.claim_blocker = self._note_wait
            self.intake.wait_key = self._wait_key
        return watchers

    def _stop_watchers(self, watchers: list[VaultWatcher]) -> None:
        """Each watcher sees its stop signal within a step (`watch.STEP_MS`); all are told
        first, then waited for together. `--once` does not wait: the process ends now,
        and the watch threads (daemon threads) with it."""
        for watcher in watchers:
            watcher.stop(wait=False)
        if not self.once:
            for watcher in watchers:
                watcher.stop()

    def _notes_changed(self, paths: set[Path]) -> None:
        if self.intake is not None:
            self.intake.notice(paths)
        # An edit of a local PR note is a human's decision: poll PRs now, not in pr.poll_s.
        review = self.ctx.vault_root / self.ctx.settings.vault.features_dir / REVIEW
        if any(path.is_relative_to(review) for path in paths):
            self.reviews.poke()

    def _reload(self) -> None:
        self.flags.reload = False
        self.sd.reloading()
        try:
            if self._rebuild is not None:
                self.runtime.notifier.stop(timeout_s=1.0)  # the outbox lock keeps sends single
                self.runtime = self._rebuild()
                self.runtime.notifier.start()
                self.reviews.refusals.clear()
                self.ctx = self.runtime.ctx
                self.pool.ctx = self.ctx
                if self.intake is not None:
                    self.intake.ctx = self.ctx  # keeps its note cache
                    self.intake.conversation.ctx = self.ctx
                daemon = self.ctx.settings.daemon
                self.poll = PollDelay(daemon.poll_active_s, daemon.poll_idle_s)
                # The operator may have fixed what the engine's breaker waits for (a model
                # the key may use): the next claim tries at once, not after the cool-down.
                self.breaker.record_success(engine_key(self.ctx.settings.agents.engine))
            log.info("configuration reloaded")
        except Exception as exc:  # a bad edit of opus.toml must not stop the service
            log.error("configuration not reloaded, keeping the old one: %s", exc)
        self.sd.ready(self._status_line())

    def _shutdown(self) -> None:
        mark("stopping")
        self.sd.stopping()
        self.reviews.stop()
        running = self.pool.controls()
        if running:
            stages = ", ".join(f"{control.stage or 'start'} ({job.fr_id})"
                               for job, control in running)
            log.info("stopping: %d job(s) at stage %s; they resume from their last checkpoint",
                     len(running), stages)
        self.pool.terminate_all("shutdown")
        grace = self.ctx.settings.daemon.stop_grace_s
        if not self.pool.wait(grace + KILL_WAIT_S):
            log.warning("some jobs were still running %.0fs after the stop; killing them", grace)
            self.pool.kill_all()
            self.pool.wait(KILL_WAIT_S)
        self._settle(self.pool.drain())
        for job, _control in self.pool.controls():
            # Still inside a stage: its checkpoint is the previous one; the next start resumes.
            self.ctx.store.release(job.id, self.worker_id)
        if self.intake is not None:
            self.intake.tick()  # the notes show the states jobs ended in, not the last tick's
            self.intake.persist(stopping=True)
        self.sd.extend_timeout(SEND_TIMEOUT_S)  # a send under way may take that long
        self.runtime.notifier.stop()
        self._flush_notifications()
        self.pool.close()
        mark("stopped")
        log.info("opus stopped")

    def _flush_notifications(self) -> None:
        """Send what is due now; each send first extends systemd's start/stop timeout
        (a hung URL takes seconds, and the outbox may hold many)."""
        self.runtime.notifier.flush(
            before_send=lambda: self.sd.extend_timeout(SEND_TIMEOUT_S)
        )

    def _recover(self) -> None:
        """Requeue jobs left running by a dead process of this host."""
        host = socket.gethostname()
        resumed = 0
        for job in self.ctx.store.jobs([JobState.RUNNING]):
            dead = job.worker is not None and _dead_local_worker(job.worker, host)
            if dead and job.worker and self.ctx.store.release(job.id, job.worker):
                self.ctx.store.add_event(job.id, "recovered", "requeued after a crash")
                resumed += 1
        if resumed:
            log.info("recovered %d job(s) left running by a dead process", resumed)
            self.ctx.notifier.notify(*recovered(resumed))

    # ------------------------------------------------------------------ one turn

    def _turn(self) -> bool:
        """One turn; a failure is logged and the loop goes on.

        A failed turn does not ping the watchdog, so a failure that persists (say the
        database is gone) ends in a restart by systemd rather than a silent spin.
        """
        try:
            busy = self._tick()
        except StoreConflict as exc:
            # Collided past the registry's retries: counts against the database breaker.
            Settler(self.ctx, self.breaker, self.worker_id).conflict(exc)
            self._healthy = False
            return len(self.pool) > 0
        except Exception:
            log.exception("a loop turn failed; trying again next turn")
            self._healthy = False
            return len(self.pool) > 0
        self._healthy = True
        return busy

    def _tick(self) -> bool:
        if self._turns == 0 and self.role != "intake":
            # A restart: jobs it recovered start before the first intake reads the vault.
            self._claim()
        self._turns += 1
        if self.intake is not None:
            self.intake.tick()
        self._settle(self.pool.drain())
        if self.role != "intake":
            self._supervise()
            self._claim()
        if self.intake is not None:
            self.intake.persist()  # after the claim: not on a job's path
        self._idle_fork_server()
        if self.gate.due(self.ctx.clock.monotonic()):
            self.sd.watchdog()
        self.sd.status(self._status_line())
        self.presence.update(self._presence_info())
        return len(self.pool) > 0

    def _idle_fork_server(self) -> None:
        """Stop the fork server (~100 MB with the engine's SDK) after `FORK_SERVER_IDLE_S`
        without a job; the next job starts it again (and waits for its imports)."""
        now = self.ctx.clock.monotonic()
        if len(self.pool) or self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= FORK_SERVER_IDLE_S:
            self.pool.close()

    def _presence_info(self) -> dict[str, object]:
        blocked = self.intake.blocked if self.intake is not None else ()
        return daemon_info(self.breaker.open_circuits(), blocked, self.ctx.clock.now())

    def _status_line(self) -> str:
        queued = self.ctx.store.queue_summary().queued
        paused = ", paused" if self._paused() else ""
        return f"{len(self.pool)} running, {queued} queued{paused}"

    def _once_finished(self) -> bool:
        if len(self.pool):
            return False
        waiting = self.ctx.store.jobs([JobState.QUEUED, JobState.RUNNING])
        if not waiting:
            return True
        # Nothing will be claimed while paused, over budget or behind an open breaker:
        # `--once` must not hang (a breaker's cool-down can be long).
        return self._claim_blocker(waiting) is not None

    def _once_blocked(self) -> bool:
        """Say what `--once` leaves behind; True when jobs wait on something it cannot fix."""
        for job in self.ctx.store.jobs([JobState.AWAITING_REVIEW]):
            log.info("--once: %s waits for a human decision on %s", job.fr_id, job.pr_url)
        for job in self.ctx.store.jobs([JobState.WAITING_INPUT]):
            note = job.spec.get("waiting", {}).get("note") or "its note (written by intake)"
            log.info("--once: %s needs your input in %s", job.fr_id, note)
        waiting = self.ctx.store.jobs([JobState.QUEUED, JobState.RUNNING])
        blocked = self._claim_blocker(waiting) if waiting else None
        if blocked is not None:
            log.warning("--once: %d job(s) left waiting because %s", len(waiting), blocked)
        return blocked is not None

    def _once_failed(self) -> bool:
        """True when a job this run worked on ended failed (then `--once` exits 1)."""
        failed = [self.ctx.store.get(job_id) for job_id in sorted(self._claimed)]
        failed = [job for job in failed if job.state is JobState.FAILED]
        for job in failed:
            first_line = (job.error or "unknown error").splitlines()[0]
            log.error("--once: %s failed: %s", job.fr_id, first_line)
        return bool(failed)

    def _claim_blocker(self, waiting: Sequence[Job]) -> str | None:
        if self._paused():
            return "claiming is paused (`opus resume`)"
        if self._over_daily_budget():
            return "the daily budget is spent (budget.daily_usd)"
        engine = engine_key(self.ctx.settings.agents.engine)
        if self.breaker.state(engine) == "open":
            why = self.breaker.last_error(engine) or "repeated failures"
            return f"the circuit breaker for {engine} is open: {why}"
        database = self._database_key()
        if self.breaker.state(database) == "open":
            return f"the circuit breaker for {database} is open after repeated conflicts"
        repos = {repo_key(job.repo) for job in waiting}
        if all(self.breaker.state(key) == "open" for key in repos):
            return f"the circuit breaker is open for {', '.join(sorted(repos))}"
        return None

    def _wait_key(self) -> object:
        """What `_note_wait` depends on besides the job: when it changes, intake
        re-mirrors every queued job's note."""
        return self._over_daily_budget(), tuple(sorted(self.breaker.opened_keys()))

    def _note_wait(self, job: Job) -> str | None:
        """The `stage: waiting: <reason>` of a queued job's note (pause is intake's own)."""
        if self._over_daily_budget():
            return "daily budget"
        keys = (engine_key(self.ctx.settings.agents.engine), self._database_key(),
                repo_key(job.repo))
        return "breaker open" if any(self.breaker.state(k) == "open" for k in keys) else None

    # ------------------------------------------------------------------ claiming

    def _paused(self) -> bool:
        return self.ctx.store.get_flag("paused") == "1"

    def _database_key(self) -> str:
        return database_key(self.ctx.settings.database_url)

    def _claim(self) -> None:
        if self._paused() or self._over_daily_budget():
            return
        engine = engine_key(self.ctx.settings.agents.engine)
        if self.breaker.is_open(engine):
            return
        trial = self.breaker.state(engine) != "closed"
        if self.breaker.is_open(self._database_key()):
            return  # its conflicts would only meet the next job too
        open_repos = [key.removeprefix("repo:") for key in self.breaker.opened_keys()
                      if key.startswith("repo:")]
        while len(self.pool) < self.ctx.settings.daemon.max_concurrent:
            job = self.ctx.store.claim(
                self.worker_id, self.ctx.settings.daemon.lease_s, exclude_repos=open_repos
            )
            if job is None:
                return
            try:
                self.ctx.store.add_event(job.id, "claimed", f"claimed by {self.worker_id}")
            except StoreError:
                # Not started: hand it back now rather than hold it until its lease ends.
                with contextlib.suppress(StoreError):
                    self.ctx.store.release(job.id, self.worker_id)
                raise
            self._claimed.add(job.id)
            if trial:
                self._engine_trials.add(job.id)
            mark(f"claimed job {job.id}")
            self.pool.start(job)
            mark(f"job {job.id} forked")

    def _over_daily_budget(self) -> bool:
        now = self.ctx.clock.now()
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        spent = self.ctx.store.cost_since(midnight)
        ceiling = self.ctx.settings.budget.daily_usd
        if spent < ceiling:
            return False
        day = now.date().isoformat()
        if self.ctx.store.get_flag("budget_notified") != day:
            self.ctx.store.set_flag("budget_notified", day)
            self.ctx.notifier.notify(*budget_hit("daily", spent, ceiling))
        return True

    # ------------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        pipeline = self.ctx.settings.pipeline
        snapshots = []
        for job, control in self.pool.controls():
            lease_s = self.ctx.settings.daemon.lease_s
            if not control.must_stop_now() and not self.ctx.store.heartbeat(
                job.id, self.worker_id, lease_s
            ):
                self._lost(job)
            snapshot = RunningSnapshot(
                job.id, job.priority, control.stage, control.idle_s(),
                control.stage_elapsed_s(), control.should_stop(),
            )
            reason = stuck_reason(
                snapshot, idle_limit_s=pipeline.stage_idle_s, stage_limit_s=pipeline.stage_timeout_s
            )
            if reason:
                self._report_stuck(job, control, reason)
            snapshots.append(snapshot)
        self._preempt(snapshots)
        self._engine_answered()

    def _engine_answered(self) -> None:
        """A trial job whose model call was answered shows the engine works again (the
        key is accepted, the API serves): claim the rest now, not when that job ends."""
        answered = [job for job, control in self.pool.controls()
                    if job.id in self._engine_trials and control.answered_at is not None]
        if not answered:
            return
        self._engine_trials.clear()
        key = engine_key(self.ctx.settings.agents.engine)
        if self.breaker.state(key) != "closed":
            self.breaker.record_success(key)
            log.warning("circuit breaker %s closed again: the model API answered %s",
                        key, answered[0].fr_id)

    def _preempt(self, running: list[RunningSnapshot]) -> None:
        waiting = self.ctx.store.queue_summary().most_urgent_queued
        victim = preemption_victim(running, waiting, self.ctx.settings.daemon.max_concurrent)
        control = self.pool.control(victim) if victim is not None else None
        if control is not None and victim is not None:
            reason = f"{PREEMPTED} by a critical FR"
            self.pool.stop_at_checkpoint(victim, reason)
            control.log(f"{reason}: pausing after the running stage completes")
            self.ctx.store.add_event(victim, "preempting", reason)

    def _lost(self, job: Job) -> None:
        """The job is no longer ours to run (cancelled, or its lease taken): kill its stage.

        A job process ends its job itself (failed, PR opened, waiting for a person) a moment
        before it exits: between the two it writes the notification and its last event, so it
        is given `WRAP_UP_S` to exit on its own before it is treated as lost.
        """
        state = self.ctx.store.get(job.id).state
        if state in ENDED_BY_ITS_PROCESS:
            now = self.ctx.clock.monotonic()
            if now - self._wrapping_up.setdefault(job.id, now) < WRAP_UP_S:
                return
        reason = "cancelled" if state is JobState.CANCELLED else f"lease lost (job {state.value})"
        log.info("%s: stopping its stage: %s", job.fr_id, reason)
        control = self.pool.control(job.id)
        if control is not None:
            control.log(f"stopping the stage now: {reason}")
        self.pool.terminate(job.id, reason)

    # ------------------------------------------------------------------ settling

    def _settle(self, finished: list[Finished]) -> None:
        settle = Settler(self.ctx, self.breaker, self.worker_id)
        for item in finished:
            self._wrapping_up.pop(item.job.id, None)
            self._engine_trials.discard(item.job.id)
            settle(item)

    def _report_stuck(self, job: Job, control: JobControl, reason: str) -> None:
        # Told at detection, and the stage is killed: a hung call must not hold the slot.
        log.warning("%s: stage stuck: %s", job.fr_id, reason)
        self.pool.terminate(job.id, f"stuck: {reason}")
        stage = control.stage or "?"
        minutes = control.stage_elapsed_s() / 60
        self.ctx.notifier.notify(*stage_stuck(job.fr_id, stage, minutes, f"{job.fr_id}: {reason}"))
        self.ctx.store.add_event(job.id, "stuck", reason)

    # ------------------------------------------------------------------ logs

    def _job_log(self, job_id: int) -> Callable[[str], None]:
        return job_logger(self.ctx.settings.state_dir, job_id)


def _dead_local_worker(worker: str, host: str) -> bool:
    name, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if name != host or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # Alive: ours only if it is this very pid, left over from a previous life.
    return int(pid_text) == os.getpid()
