"""The seams of opus: small Protocols that implementations never inherit.

Each one is chosen from config by name (see the `*_for` factories next to the
implementations) and has a fake in `opus.testing`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from opus.domain import (
    DaemonRecord,
    Event,
    FeatureRequest,
    Job,
    JobState,
    QueueSummary,
    Role,
    StageRun,
    Usage,
)

# --------------------------------------------------------------------------- clock


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall time."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


# --------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str
    """stdout and stderr interleaved, capped (the tail is kept)."""
    duration_s: float
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class Grant:
    """What one program in the sandbox gets beyond what commands get: the network and
    variables the scrub would remove (an agent CLI's own API transport and credential).

    Everything that program starts inherits both; the mounts, limits and timeout stay.
    """

    network: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    writable_inside: tuple[Path, ...] = ()
    """Directories inside the worktree that stay writable when it is mounted read-only
    (the program's own state); with no isolation everything is writable anyway."""


class Sandbox(Protocol):
    def run(
        self,
        command: str,
        *,
        worktree: Path,
        timeout_s: float,
        writable: bool = True,
    ) -> CommandResult:
        """Run a shell command with `worktree` as cwd and the only writable place.

        `writable=False` mounts the worktree read-only too (planner, reviewer).
        """
        ...

    def start(self, command: str, *, worktree: Path, writable: bool = True) -> SandboxProcess:
        """Start `command` like `run` does, but leave it running and return it.

        Its stdin and stdout are pipes (stderr goes to stdout) and it leads its own process
        group; the caller owns it and must `stop()` it. Used for the agents' persistent
        bash session.
        """
        ...

    def granting(self, grant: Grant) -> Sandbox:
        """This sandbox for a program that needs `grant`: same mounts, hidden places,
        limits and process control, plus the network and variables `grant` names."""
        ...


class SandboxProcess(Protocol):
    """A long-lived process `Sandbox.start` started."""

    @property
    def proc(self) -> subprocess.Popen[bytes]: ...

    def stop(self) -> None:
        """Kill it and everything it started, and release what the sandbox made for it."""
        ...

    def over_limit(self) -> str | None:
        """A limit the command running now is already past (the worktree's size), or
        None; the caller stops the process when it is not None. Cheap: ask once a second."""
        ...

    def uncovered_sockets(self) -> list[Path]:
        """Host unix sockets reachable from inside it that its sandbox does not cover
        (bound on the host after it started); the caller restarts it to cover them.
        Empty without a filesystem sandbox. Cheap: ask before each command."""
        ...

    def cover_vanished(self, output: str) -> bool:
        """True when it ended before running anything, with `output`, because a host
        socket its sandbox was to cover vanished while it was set up: start it again."""
        ...

    def limit_hit(self, exit_code: int, output: str) -> str | None:
        """The resource limit the command that just ended in it ran into (one line naming
        the `sandbox.max_*` key and the fix), or None."""
        ...


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class AgentTask:
    role: Role
    system_prompt: str
    user_message: str
    worktree: Path
    sandbox: Sandbox
    model: str
    max_turns: int
    max_tokens: int
    """Tokens for the whole stage (input + output over all turns)."""
    timeout_s: float
    budget_usd: float
    """What the job may still spend in this stage."""
    on_activity: Callable[[str], None] = lambda _msg: None
    """Called on every model reply and tool call (liveness for the supervisor, logs)."""
    on_spend: Callable[[Usage, float], None] = lambda _usage, _cost_usd: None
    """Called after each billed model call, before anything else happens, with what the
    stage has spent so far (usage, USD): the pipeline records it in the registry at once
    (designs/pipeline.md, "Spend, call by call"). It may raise to end the stage (the job's
    lease is lost): the engine lets that through."""
    on_answer: Callable[[], None] = lambda: None
    """Called when the model's API answered a call: the engine works (it closes the
    engine's breaker on a trial job without waiting for the job to end)."""
    should_stop: Callable[[], bool] = lambda: False
    """Polled between turns: True asks the engine to stop now (stuck, shutdown)."""
    can_ask: bool = False
    """Offer the `ask_human` tool (the planner; the coder with `agents.coder_can_ask`)."""


StopReason = Literal[
    "submitted", "asked", "end_turn", "max_turns", "max_tokens", "timeout", "loop", "budget"
]


@dataclass(frozen=True)
class AgentResult:
    stop_reason: StopReason
    output: dict[str, Any]
    """planner: {summary, steps}; reviewer: {verdict, summary, comments}; coder: {summary};
    any role that called `ask_human` (stop_reason "asked"): {questions}."""
    usage: Usage = Usage()
    cost_usd: float = 0.0
    turns: int = 0
    report: str = ""
    """Why it stopped, for a human, when it was not a normal end."""


class Engine(Protocol):
    def run(self, task: AgentTask) -> AgentResult: ...


# --------------------------------------------------------------------------- forge


@dataclass(frozen=True)
class ReviewComment:
    path: str | None
    line: int | None
    body: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    branch: str
    base: str
    state: Literal["open", "merged", "closed"] = "open"


@dataclass(frozen=True)
class PRFeedback:
    """What a human said on a PR since opus last pushed."""

    state: Literal["open", "merged", "closed"]
    changes_requested: bool = False
    comments: tuple[ReviewComment, ...] = field(default=())
    summary: str = ""
    approved: bool = False
    """Some human's latest verdict approves and none asks for changes."""
    head: str | None = None
    """The commit the PR's head is at (`head.sha`), when the forge says."""


CheckState = Literal["pending", "success", "failure", "none"]
"""What a commit's checks add up to: some still running, all green, some red, none at all."""


@dataclass(frozen=True)
class Check:
    """One check of a commit: a GitHub check run or commit status, a Gitea status."""

    name: str
    state: Literal["pending", "success", "failure"]
    conclusion: str
    """The forge's own word: success, failure, error, cancelled, timed_out, neutral, ..."""
    title: str = ""
    summary: str = ""
    text: str = ""
    url: str = ""
    annotations: tuple[str, ...] = ()
    """`path:line: message`, filled only when details were asked for."""
    log_tail: str = ""
    """The end of a failed GitHub Actions job's log (ANSI stripped), when asked for."""


@dataclass(frozen=True)
class CIReport:
    """The checks of one commit (`sha`) and what they add up to."""

    sha: str
    state: CheckState
    checks: tuple[Check, ...] = ()

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.state == "failure")


@dataclass(frozen=True)
class RequiredChecks:
    """The checks a forge requires to pass before a PR into a branch may merge."""

    names: tuple[str, ...]
    """Check names (GitHub: check-run names and status contexts) or, where `patterns`,
    shell-style patterns (Gitea's `status_check_contexts`)."""
    source: str
    """Where the forge keeps the rule, for messages: "branch protection of main"."""
    patterns: bool = False


class Forge(Protocol):
    def find_pr(self, branch: str, base: str | None = None) -> PullRequest | None:
        """The PR whose head is `branch` (into `base`, when given): the open one if there
        is one, else the newest, open or not."""
        ...

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest: ...

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback: ...

    def comment(self, pr: PullRequest, body: str) -> None: ...

    def checks(self, sha: str, *, details: bool = False) -> CIReport:
        """The checks of commit `sha`; with `details`, the failing ones carry their
        annotations and (GitHub Actions) log tails. A forge without CI reports `none`."""
        ...

    def required_checks(self, base: str) -> RequiredChecks | None:
        """The checks the forge requires for PRs into `base`; None when it does not say
        (an unprotected branch, a token that may not read the rule, a forge without CI)."""
        ...

    def mergeable(self, pr: PullRequest) -> bool | None:
        """Whether the forge can merge the PR into its base now: False on a conflict,
        None when it does not say (still computing, or a forge without the notion)."""
        ...


# --------------------------------------------------------------------------- notifier


NotifyKind = Literal[
    "pr_opened", "failed", "stuck", "recovered", "budget", "breaker", "info", "needs_you",
    "ready",
]


class Notifier(Protocol):
    def notify(self, kind: NotifyKind, title: str, body: str) -> None:
        """Queue a notification; never raises for a failing URL."""
        ...


# --------------------------------------------------------------------------- store


class JobReader(Protocol):
    """What a command that only looks needs of the registry (`opus.registry.reader`);
    every `JobStore` is one too."""

    def jobs(self, states: Iterable[JobState] | None = None) -> Sequence[Job]: ...

    def latest_jobs(
        self, states: Iterable[JobState], *, limit: int, offset: int = 0
    ) -> Sequence[Job]:
        """The jobs in `states` that changed last, latest first: `limit` of them after
        skipping `offset` (a page of the board's Done or Failed lane)."""
        ...

    def count_jobs(self, states: Iterable[JobState]) -> int:
        """How many jobs are in `states`."""
        ...

    def get_flag(self, name: str) -> str | None: ...

    def daemons(self) -> Sequence[DaemonRecord]:
        """Every daemon's presence record (`opus.presence`), oldest first."""
        ...

    def cost_since(self, since: datetime) -> float:
        """What every stage run finished at or after `since` cost, in USD."""
        ...


class JobStore(Protocol):
    """The registry of jobs, checkpoints and events (see `opus.registry`)."""

    def enqueue(self, fr: FeatureRequest, repo: Path) -> Job:
        """A queued job for `fr`; the same id and content hash never makes a second job."""
        ...

    def claim(
        self, worker: str, lease_s: float, *, exclude_repos: Collection[str | Path] = ()
    ) -> Job | None:
        """Atomically take the most urgent claimable job (not in `exclude_repos`), or None."""
        ...

    def release(self, job_id: int, worker: str) -> bool:
        """Put a running job back in the queue with its checkpoints; False if not held."""
        ...

    def heartbeat(self, job_id: int, worker: str, lease_s: float) -> bool:
        """Renew a lease; False when the worker no longer holds it."""
        ...

    def transition(self, job_id: int, to: JobState, **fields: Any) -> Job: ...

    def update(self, job_id: int, *, if_state: JobState | None = None, **fields: Any) -> Job:
        """Change fields other than the state (stage, iteration, branch, pr_url...);
        with `if_state`, only while the job is in that state (else `StoreError`)."""
        ...

    def get(self, job_id: int) -> Job: ...

    def latest_for_fr(self, fr_id: str) -> Job | None: ...

    def latest_for_frs(self, fr_ids: Iterable[str]) -> Mapping[str, Job]:
        """The most recent job of each FR that has one, in one query."""
        ...

    def changed_since(self, since: datetime) -> Sequence[Job]:
        """The jobs whose row changed at or after `since`, oldest change first."""
        ...

    def queue_summary(self) -> QueueSummary:
        """Queued and running counts and the most urgent queued priority, in one query."""
        ...

    def jobs(self, states: Iterable[JobState] | None = None) -> Sequence[Job]: ...

    def latest_jobs(
        self, states: Iterable[JobState], *, limit: int, offset: int = 0
    ) -> Sequence[Job]: ...

    def count_jobs(self, states: Iterable[JobState]) -> int: ...

    def record_stage(self, run: StageRun, *, metered: int | None = None) -> None:
        """Store a checkpoint (or failed run) and add its cost to the job; `metered`: the
        run `meter_stage` kept the stage's spend in, which becomes `run`."""
        ...

    def meter_stage(self, run: StageRun, *, holder: str, metered: int | None) -> int | None:
        """Record a running stage's spend so far (`run`) in the run `metered` (None: a new
        failed run) and add what is new to the job's cost, only while `holder` holds the
        job; the run's id, or None when it does not (nothing written)."""
        ...

    def stage_runs(self, job_id: int) -> Sequence[StageRun]: ...

    def add_event(self, job_id: int | None, kind: str, message: str) -> None: ...

    def events(self, job_id: int | None = None, after_id: int = 0) -> Sequence[Event]: ...

    def get_flag(self, name: str) -> str | None: ...

    def set_flag(self, name: str, value: str | None) -> None: ...

    def cost_since(self, since: datetime) -> float: ...

    def beat_daemon(self, record: DaemonRecord) -> None:
        """Insert or renew a daemon's presence record."""
        ...

    def daemons(self) -> Sequence[DaemonRecord]: ...

    def forget_daemon(self, daemon_id: str) -> None: ...
