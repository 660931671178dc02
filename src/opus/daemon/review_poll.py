"""The human gate: poll the PRs of jobs awaiting review and act on what humans decided.

merged → job done, worktree, local branch and WIP ref removed; closed → cancelled (the
branch stays, the work may still be wanted); changes requested → the job
goes back to the queue with the comments, for a new code → test → review round on the
same branch — within the round cap: past it the PR is handed back to the person
(`opus.pipeline.handback`), and opus acts on no further change request. Otherwise the
open PR's conflicts and checks are looked at (`opus.daemon.pr_gate`): a new round, a
"needs you", or "ready to merge".

`ReviewPoller` runs the polling on a thread of its own, so the daemon's loop never
waits on the forge (see designs/services.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping

from opus.control import remove_worktree
from opus.daemon.polling import Backoff
from opus.daemon.pr_gate import react_to_pr
from opus.daemon.pr_reactions import round_cap, start_round
from opus.delivery.guards import remote_head
from opus.delivery.reactions import escalation
from opus.delivery.review_loop import decide
from opus.domain import Job, JobState, Stage
from opus.errors import OpusError
from opus.forges.http import ForgeRefused, RateLimited, rate_waits
from opus.git import git
from opus.notify import pr_unreadable
from opus.pipeline.context import PipelineContext
from opus.pipeline.handback import out_of_rounds
from opus.pipeline.worktree import wip_ref
from opus.seams import PRFeedback, PullRequest

log = logging.getLogger(__name__)

MAX_REFUSALS = 3
"""A job whose PR the forge refuses (4xx) this many times in a row is no longer polled."""
STOP_WAIT_S = 2.0


class ReviewPoller:
    """Polls the PRs of jobs awaiting review on a thread of its own.

    A hung or slow forge holds only this thread (each request is bounded by the HTTP
    client's timeouts), so the loop's watchdog pings keep their interval. Passes back off
    from `poll_s` to 8 times that while nothing changes; a rate limit pauses every poll until it
    lifts; a PR the forge keeps refusing is left alone (see `MAX_REFUSALS`).
    """

    def __init__(
        self,
        ctx: Callable[[], PipelineContext],
        *,
        poll_s: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._ctx = ctx
        self._backoff = Backoff(poll_s, poll_s * 8)
        self._on_change = on_change
        self.refusals: dict[int, int] = {}
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ReviewPoller(next_s={self._backoff.current_s}, refused={len(self.refusals)})"

    def start(self) -> None:
        """Poll now and then on, until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="opus-reviews", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Stop polling; a request under way is not waited for longer than `timeout_s`."""
        thread, self._thread = self._thread, None
        self._stop.set()
        self._poke.set()
        if thread is not None:
            thread.join(timeout=timeout_s)

    def poll_once(self) -> float:
        """One pass over the jobs awaiting review; returns the seconds until the next."""
        try:
            with rate_waits(0):  # a limit pauses every poll, not one request
                changed = poll_reviews(self._ctx(), self._changed, refusals=self.refusals)
        except RateLimited as exc:
            log.warning("PR polling paused for %.0f s: %s", exc.wait_s, exc)
            return max(exc.wait_s, self._backoff.base_s)
        except Exception:  # a bad pass must not end the polling for good
            log.exception("PR polling failed; trying again later")
            changed = 0
        return self._backoff.next_delay(changed > 0)

    def poke(self) -> None:
        """Poll now, whatever the backoff (a local PR note was edited)."""
        self._poke.set()

    def _run(self) -> None:
        delay = 0.0
        while True:
            self._poke.wait(delay)
            self._poke.clear()
            if self._stop.is_set():
                return
            delay = self.poll_once()

    def _changed(self, job: Job, what: str) -> None:
        log.info("%s: %s", job.fr_id, what)
        self._on_change()


def poll_reviews(
    ctx: PipelineContext,
    on_change: Callable[[Job, str], None],
    *,
    refusals: MutableMapping[int, int] | None = None,
) -> int:
    """Check every job awaiting review once; returns how many changed state.

    `refusals` counts, per job, the forge's 4xx answers in a row; a job at
    `MAX_REFUSALS` is skipped. A rate limit ends the pass (`RateLimited` propagates):
    every other job would meet the same limit.
    """
    changed = 0
    refused = refusals if refusals is not None else {}
    for job in ctx.store.jobs([JobState.AWAITING_REVIEW]):
        if refused.get(job.id, 0) >= MAX_REFUSALS:
            continue
        try:
            decision = _check(ctx, job)
        except RateLimited:
            raise
        except ForgeRefused as exc:
            if 400 <= exc.status < 500:
                _refused(ctx, job, exc, refused)
            else:
                log.warning("cannot check the PR of %s: %s", job.fr_id, exc)
            continue
        except OpusError as exc:
            log.warning("cannot check the PR of %s: %s", job.fr_id, exc)
            continue
        refused.pop(job.id, None)
        if decision != "wait":
            changed += 1
            on_change(ctx.store.get(job.id), decision)
    return changed


def _refused(
    ctx: PipelineContext, job: Job, exc: ForgeRefused, refused: MutableMapping[int, int]
) -> None:
    count = refused[job.id] = refused.get(job.id, 0) + 1
    if count < MAX_REFUSALS:
        log.warning("the forge refused the PR check of %s (%d/%d): %s",
                    job.fr_id, count, MAX_REFUSALS, exc)
        return
    log.error("no longer checking the PR of %s: %s", job.fr_id, exc)
    ctx.store.add_event(job.id, "forge_refused", f"PR checks stopped: {exc}")
    ctx.notifier.notify(*pr_unreadable(job.fr_id, str(exc)))


def _check(ctx: PipelineContext, job: Job) -> str:
    if not job.branch:
        return "wait"
    forge = ctx.forge_for(job)
    pr = forge.find_pr(job.branch, job.base)
    if pr is None:
        return _missing_pr(ctx, job)
    delivered = [r for r in ctx.store.stage_runs(job.id) if r.ok and r.stage is Stage.DELIVER]
    since = delivered[-1].finished_at if delivered else None
    feedback = forge.feedback(pr, since)
    decision: str = decide(feedback)
    if decision == "done":
        ctx.store.transition(job.id, JobState.DONE)
        ctx.store.add_event(job.id, "merged", f"{pr.url} was merged")
        _remove_worktree(ctx, job)
        _forget_branch(ctx, job)
    elif decision == "cancelled":
        ctx.store.transition(job.id, JobState.CANCELLED, error="the PR was closed without merge")
        ctx.store.add_event(job.id, "closed", f"{pr.url} was closed without merge")
        _remove_worktree(ctx, job)
    elif decision == "new_round":
        decision = _changes_requested(ctx, job, pr, feedback)
    else:
        decision = react_to_pr(ctx, job, forge, pr, feedback)
    return decision


def _changes_requested(
    ctx: PipelineContext, job: Job, pr: PullRequest, feedback: PRFeedback
) -> str:
    """A new round with the reviewer's comments, while the round cap allows; past it,
    the PR goes back to the person (`handback.out_of_rounds`), and while it is theirs
    opus starts nothing on a change request."""
    if escalation(job.spec, "review") is not None:
        return "wait"
    sha = feedback.head or ""
    if round_cap(ctx, job) - job.iteration <= 0:
        return "escalated" if out_of_rounds(ctx, job, pr, sha=sha) else "wait"
    ctx.store.add_event(job.id, "changes_requested", f"a human asked for changes on {pr.url}")
    start_round(ctx, job, pr, kind="review", sha=sha, trigger="a human requested changes",
                report=human_report(feedback), once_per_sha=False)  # fmt: skip
    return "new_round"


def _missing_pr(ctx: PipelineContext, job: Job) -> str:
    """A local PR note the human deleted is a rejection; a forge PR that vanished waits."""
    if ctx.settings.pr.provider != "local":
        log.warning("the PR of %s (%s) is not found on the forge", job.fr_id, job.branch)
        return "wait"
    ctx.store.transition(job.id, JobState.CANCELLED, error="the PR note was deleted")
    ctx.store.add_event(job.id, "closed", "the PR note was deleted from the vault")
    _remove_worktree(ctx, job)
    return "cancelled"


def human_report(feedback: PRFeedback) -> str:
    """What the coder is told after a human requested changes on the PR."""
    lines = [f"A human reviewer requested changes on the pull request. {feedback.summary}".strip()]
    for comment in feedback.comments:
        where = comment.path or "general"
        if comment.line:
            where += f":{comment.line}"
        lines.append(f"- {where}: {comment.body}")
    return "\n".join(lines)


def _remove_worktree(ctx: PipelineContext, job: Job) -> None:
    try:
        remove_worktree(ctx.settings, job)
    except OpusError as exc:
        log.warning("could not remove the worktree of %s: %s", job.fr_id, exc)


def _forget_branch(ctx: PipelineContext, job: Job) -> None:
    """After a merge, drop opus's local branch and its WIP ref on the remote.

    The local branch goes only while the remote still holds exactly its tip, so no commit
    exists only here (a squash merge does not keep the branch's commits in `base`).
    """
    remote = ctx.settings.git.remote
    try:
        if job.branch:
            local = git("rev-parse", "--verify", "--quiet", f"refs/heads/{job.branch}",
                        cwd=job.repo, check=False)
            if local and local == remote_head(job.repo, remote, job.branch):
                git("branch", "-D", job.branch, cwd=job.repo)
        git("push", "--quiet", "--no-verify", remote, f":{wip_ref(job.id)}", cwd=job.repo,
            check=False)
    except OpusError as exc:
        log.warning("could not clean up the branch of %s: %s", job.fr_id, exc)
