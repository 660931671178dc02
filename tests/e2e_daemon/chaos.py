"""SIGKILL daemons at random moments until every FR is through, then audit what is left.

`Chaos.run` starts the daemons of a workspace and, in a bounded loop, waits until they
serve, waits 0.2 to 1.5 s and kills a random one — its whole process group, as systemd does,
so a `git worktree add/remove` it runs dies with it — and starts a fresh one in its place.
The first kill and every third one after it arm a trap in the daemons' `git` (a wrapper
first on their PATH): the next `git worktree add/remove` is stopped a few milliseconds
in, while git holds its locks, and the daemon running it is killed then (if none comes
within 3 s, a random one is killed anyway). The first trap is armed before the daemons
start and waited for up to 20 s, so it catches the first jobs' `worktree add`.
After the kills the daemons run undisturbed until every FR's job is awaiting review, or
the deadline passes (counted again from the last restart: both phases get `deadline_s`).

`audit` returns what is wrong with the end state (empty when all is right): every FR has
exactly one job and it is awaiting review, every stage is completed once per round, each
FR has one PR note and its note is valid with status `review`, `git worktree list` works.
Used by tests/e2e_daemon/test_chaos.py (short) and bench/chaos.py (long, with figures).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from opus.domain import FRStatus, JobState
from opus.vault.note import ParsedNote, read_note
from tests.e2e_daemon.agency import file_for
from tests.e2e_daemon.harness import Daemon, Daemons, Workspace

PIPELINE = ["plan", "code", "test", "review", "deliver"]
CHAOS_DAEMON = {
    "poll_active_s": 0.2,
    "poll_idle_s": 0.3,
    "max_concurrent": 2,
    "lease_s": 3,
    "heartbeat_s": 1,
}
"""Short leases: a job whose worker was killed is taken over within seconds."""
FIRST_GIT_WAIT_S = 20.0
"""How long the first kill waits for the first `git worktree add` to be trapped."""

GIT_TRAP = """\
#!/bin/bash
# git, except that one `worktree add/remove` after the chaos loop armed the trap is
# stopped a few milliseconds in (while it holds its locks) until the loop kills it.
case " $* " in
*" worktree add "* | *" worktree remove "*)
    if mv "{trap}/armed" "{trap}/claimed.$$" 2>/dev/null; then
        {git} "$@" &
        child=$!
        sleep 0.00$((RANDOM % 10))
        kill -STOP "$child" 2>/dev/null
        echo $$ > "{trap}/sprung.$$" && mv "{trap}/sprung.$$" "{trap}/sprung"
        (sleep 3; kill -CONT "$child" 2>/dev/null) &
        wait "$child"
        exit $?
    fi
    ;;
esac
exec {git} "$@"
"""


@dataclass
class ChaosReport:
    kills: int = 0
    git_kills: int = 0
    """Kills made while a `git worktree` command of the workspace was running."""
    recoveries_s: list[float] = field(default_factory=list)
    """Seconds from a kill until the registry next recorded progress, for each kill that
    progress followed before the next kill (kills in quick succession count once)."""
    converge_s: float = 0.0
    """From the first daemon's start until every FR was awaiting review."""
    converged: bool = False


@dataclass
class Chaos:
    ws: Workspace
    daemons: Daemons
    frs: list[str]
    daemon_count: int = 1
    kills: int = 10
    deadline_s: float = 55.0
    seed: int | None = None
    report: ChaosReport = field(default_factory=ChaosReport)

    def run(self) -> ChaosReport:
        rng = random.Random(self.seed)
        self.ws.write_config(daemon=CHAOS_DAEMON)
        for fr_id in self.frs:
            self.ws.write_fr(fr_id)
        began = time.monotonic()
        deadline = began + self.deadline_s
        env = self._git_trap()
        # The first kill is a git one, and the first jobs' `worktree add` come right after
        # the start: armed before it, the trap cannot miss them.
        (self.trap / "armed").touch()
        live = [
            self.daemons.start(self.ws, *_role(index), env=env)
            for index in range(self.daemon_count)
        ]
        progress = self._progress()
        killed_at: float | None = None
        while self.report.kills < self.kills and time.monotonic() < deadline:
            _wait_serving(live, deadline)
            want_git = self.report.kills % 3 == 0
            # The first jobs' worktrees come once intake saw the notes settle and a worker
            # claimed them: seconds after the start on a busy machine, so wait for them.
            git_wait_s = 3.0 if self.report.kills else FIRST_GIT_WAIT_S
            wait_until = time.monotonic() + (git_wait_s if want_git else rng.uniform(0.2, 1.5))
            hit_git = False
            if want_git and self.report.kills:
                (self.trap / "armed").touch()
            while time.monotonic() < wait_until:
                if want_git and (self.trap / "sprung").exists():
                    hit_git = True
                    break
                progress, killed_at = self._note_progress(progress, killed_at)
                time.sleep(0.01 if want_git else 0.05)
            (self.trap / "armed").unlink(missing_ok=True)
            if self._all_done():
                break
            index = _holder(live, self.trap / "sprung") if hit_git else None
            index = rng.randrange(len(live)) if index is None else index
            _kill_group(live[index])
            killed_at = time.monotonic()
            self.report.kills += 1
            self.report.git_kills += hit_git
            (self.trap / "sprung").unlink(missing_ok=True)
            live[index] = self.daemons.start(self.ws, *_role(index), env=env)
        # The last restart starts the undisturbed run: a busy machine may have spent the
        # whole deadline on the kills, and every restart costs seconds there.
        deadline = time.monotonic() + self.deadline_s
        while time.monotonic() < deadline and not self._all_done():
            progress, killed_at = self._note_progress(progress, killed_at)
            time.sleep(0.1)
        self.report.converged = self._all_done()
        self.report.converge_s = time.monotonic() - began
        return self.report

    def _note_progress(self, seen: int, killed_at: float | None) -> tuple[int, float | None]:
        now = self._progress()
        if now > seen and killed_at is not None:
            self.report.recoveries_s.append(time.monotonic() - killed_at)
            killed_at = None
        return now, killed_at

    def _progress(self) -> int:
        """Completed stages over all jobs: grows whenever any pipeline moves on."""
        if self.ws.database_url is None and not (self.ws.root / ".opus" / "opus.db").exists():
            return 0
        store = self.ws.store
        return sum(1 for job in store.jobs() for run in store.stage_runs(job.id) if run.ok)

    def _all_done(self) -> bool:
        if self.ws.database_url is None and not (self.ws.root / ".opus" / "opus.db").exists():
            return False
        jobs = self.ws.store.latest_for_frs(self.frs)
        return len(jobs) == len(self.frs) and all(
            job.state is JobState.AWAITING_REVIEW for job in jobs.values()
        )

    @property
    def trap(self) -> Path:
        return self.ws.root / "git-trap"

    def _git_trap(self) -> dict[str, str]:
        """A `git` first on the daemons' PATH that can hold a worktree command mid-way."""
        real = shutil.which("git")
        assert real is not None, "git is not on PATH"
        bin_dir = self.ws.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        self.trap.mkdir(exist_ok=True)
        wrapper = bin_dir / "git"
        wrapper.write_text(GIT_TRAP.format(trap=self.trap, git=real))
        wrapper.chmod(0o755)
        return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _wait_serving(live: list[Daemon], deadline: float) -> None:
    """Wait (bounded) until every daemon has started serving: a kill counts from there."""
    while time.monotonic() < deadline and not all("opus serving" in d.output for d in live):
        time.sleep(0.05)


def _holder(live: list[Daemon], sprung: Path) -> int | None:
    """Which daemon's process group the trapped `git` runs in (None if unknown)."""
    try:
        group = os.getpgid(int(sprung.read_text()))
    except (OSError, ValueError):
        return None
    for index, daemon in enumerate(live):
        if daemon.proc.pid == group:
            return index
    return None


def _kill_group(daemon: Daemon) -> None:
    """SIGKILL the daemon and everything in its process group, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(daemon.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        daemon.proc.wait(timeout=10)


def settled_audit(ws: Workspace, frs: list[str], settle_s: float = 10.0) -> list[str]:
    """`audit`, given the FR notes (which follow the registry a moment later) `settle_s`."""
    settled = time.monotonic() + settle_s
    while (problems := audit(ws, frs)) and time.monotonic() < settled:
        time.sleep(0.2)
    return problems


def audit(ws: Workspace, frs: list[str]) -> list[str]:
    """Everything wrong with the workspace's end state; empty when it is all right."""
    problems: list[str] = []
    store = ws.store
    jobs_per_fr = Counter(job.fr_id for job in store.jobs())
    for fr_id in frs:
        if jobs_per_fr[fr_id] != 1:
            problems.append(f"{fr_id}: {jobs_per_fr[fr_id]} jobs (want 1)")
        job = store.latest_for_fr(fr_id)
        if job is None:
            problems.append(f"{fr_id}: lost (no job)")
            continue
        if job.state is not JobState.AWAITING_REVIEW:
            problems.append(f"{fr_id}: job {job.id} is {job.state.value}: {job.error}")
        done = Counter(
            (run.stage.value, run.iteration) for run in store.stage_runs(job.id) if run.ok
        )
        twice = [key for key, count in done.items() if count > 1]
        if twice:
            problems.append(f"{fr_id}: stages completed more than once: {twice}")
        stages = sorted({stage for stage, _ in done}, key=PIPELINE.index)
        if stages != PIPELINE:
            problems.append(f"{fr_id}: completed stages {stages}")
        if job.branch and ws.branch_files(fr_id) != {file_for(fr_id)}:
            problems.append(f"{fr_id}: branch changes {sorted(ws.branch_files(fr_id))}")
    problems += _audit_notes(ws, frs)
    listing = subprocess.run(
        ["git", "worktree", "list"],
        check=False,
        cwd=ws.repo,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if listing.returncode != 0:
        problems.append(f"git worktree list failed: {listing.stderr.strip()}")
    return problems


def _audit_notes(ws: Workspace, frs: list[str]) -> list[str]:
    problems: list[str] = []
    features = ws.root / "vault" / "10_features"
    review = features / "05_review"
    for fr_id in frs:
        prs = sorted(review.glob(f"PR-{fr_id}-*.md"))
        if len(prs) != 1:
            problems.append(f"{fr_id}: {len(prs)} PR notes (want 1): {[p.name for p in prs]}")
    statuses: dict[str, list[str]] = {}
    for path in sorted(features.rglob("*.md")):
        if path.name.startswith("PR-"):
            continue
        verdict = read_note(path, path.read_bytes())
        if not isinstance(verdict, ParsedNote):
            problems.append(f"{_rel(path, features)}: does not parse: {verdict}")
            continue
        statuses.setdefault(verdict.fr.id, []).append(
            f"{verdict.fr.status.value} in {_rel(path, features)}"
        )
    for fr_id in frs:
        want = [f"{FRStatus.REVIEW.value} in 05_review/{fr_id}.md"]
        if statuses.get(fr_id) != want:
            problems.append(f"{fr_id}: notes {statuses.get(fr_id)} (want {want})")
    leftovers = sorted(p.name for p in features.rglob("*") if p.is_file() and p.suffix != ".md")
    if leftovers:
        problems.append(f"stray files among the notes: {leftovers}")
    return problems


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _role(index: int) -> tuple[str, ...]:
    """SPEC §9: exactly one daemon watches the vault and writes notes; the others only work."""
    return () if index == 0 else ("--role", "worker")
