"""A small world for delivery end-to-end tests: a vault, a target repo with a bare
`origin`, a real SQLite registry, the scripted engine, and the daemon's own parts
(intake, `run_job`, `poll_reviews`) driven one step at a time.

`Bench.work()` does what one daemon worker does with a claimed job, including what the
daemon does with an infrastructure error (the job goes back to the queue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frontmatter

from opus.config import (
    DaemonConfig,
    GitConfig,
    NotifyConfig,
    PipelineConfig,
    PRConfig,
    SandboxConfig,
    Settings,
    VaultConfig,
)
from opus.daemon.intake import Intake
from opus.daemon.logs import log_path
from opus.daemon.review_poll import poll_reviews
from opus.daemon.runtime import Runtime, build_runtime
from opus.domain import Job, Role
from opus.errors import OpusError
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import Outcome, run_job
from opus.registry import Registry
from opus.seams import Clock
from opus.testing.engine import Round, ScriptedEngine, Submit, Write
from opus.vault import init_vault
from tests.conftest import make_repo, run_git

WORKER = "e2e-worker"
TOKEN_ENV = "OPUS_E2E_FORGE_TOKEN"
CHECK = 'import runpy\n\nrunpy.run_path("src/app.py", run_name="__main__")\n'
PLAN = Submit({
    "summary": "Add greet() in src/app.py.",
    "steps": [{"title": "Write src/app.py", "postcondition": "python3 check.py exits 0"}],
})  # fmt: skip
APPROVE = Submit({"verdict": "approve", "summary": "Small and correct.", "comments": []})


def code(text: str, *, path: str = "src/app.py", summary: str = "") -> list[Write | Submit]:
    """A coder round that writes one file and ends its turn."""
    return [Write(path, text), Submit({"summary": summary or f"Wrote {path}."})]


GREET_V1 = code("def greet() -> str:\n    return 'hi'\n", summary="Added greet().")
GREET_V2 = code(
    "def greet(name: str) -> str:\n    return f'hi {name}'\n", summary="greet() takes a name now."
)


def script(*coder_rounds: Round) -> dict[Role, Sequence[Round]]:
    """Plan once, code `coder_rounds` in turn (the last repeats), approve every review."""
    return {
        Role.PLANNER: [[PLAN]],
        Role.CODER: list(coder_rounds or (GREET_V1,)),
        Role.REVIEWER: [[APPROVE]],
    }


@dataclass
class Bench:
    root: Path
    repo: Path
    remote: Path
    runtime: Runtime
    engine: ScriptedEngine
    intake: Intake

    @property
    def ctx(self) -> PipelineContext:
        return self.runtime.ctx

    @property
    def store(self) -> Registry:
        store = self.ctx.store
        assert isinstance(store, Registry)
        return store

    @property
    def vault(self) -> Path:
        return self.ctx.settings.vault_path

    def write_fr(self, fr_id: str = "FR-1", *, extra: str = "") -> Path:
        """A planned FR note in `03_planned/`."""
        path = self.vault / "10_features" / "03_planned" / f"{fr_id}.md"
        path.write_text(
            f"---\nid: {fr_id}\ntitle: Add greeting\nstatus: planned\n"
            f"test_command: python3 check.py\n{extra}---\n# Summary\n\nSay hi to users.\n",
            encoding="utf-8",
        )
        return path

    def enqueue(self, fr_id: str = "FR-1") -> Job:
        """One intake tick; the FR's job."""
        self.intake.tick()
        job = self.store.latest_for_fr(fr_id)
        assert job is not None, f"intake did not enqueue {fr_id}"
        return job

    def work(self) -> Outcome | OpusError:
        """Claim the next job and run it, as a daemon worker does."""
        job = self.store.claim(WORKER, 60)
        assert job is not None, "nothing to claim"
        try:
            outcome: Outcome | OpusError = run_job(job, self.ctx, JobControl(job.id))
        except OpusError as exc:
            # The daemon's answer to an infrastructure error: release, retry later.
            self.store.release(job.id, WORKER)
            outcome = exc
        return outcome

    def poll(self) -> list[str]:
        """One pass of the human gate; the decisions taken."""
        seen: list[str] = []
        poll_reviews(self.ctx, lambda _job, what: seen.append(what))
        return seen

    def note(self, fr_id: str = "FR-1") -> tuple[Path, dict[str, Any]]:
        """Where the FR note is now, and its frontmatter."""
        for path in sorted((self.vault / "10_features").rglob(f"{fr_id}.md")):
            return path, dict(frontmatter.load(str(path)).metadata)
        raise AssertionError(f"no note for {fr_id}")

    def remote_head(self, branch: str) -> str | None:
        out = run_git(self.remote, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
        return out or None

    def remote_branches(self) -> list[str]:
        out = run_git(self.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(out.split())


def make_bench(
    tmp_path: Path,
    *,
    pr: PRConfig | None = None,
    git: GitConfig | None = None,
    max_iterations: int = 3,
    rounds: Sequence[Round] = (),
    clock: Clock | None = None,
    notify: NotifyConfig | None = None,
) -> Bench:
    """Vault, repo (`main` with check.py, pushed to a bare `origin`), registry, engine."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# widgets\n", "check.py": CHECK})
    remote = tmp_path / "remote.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main")
    init_vault(tmp_path)
    settings = Settings(
        base_dir=tmp_path,
        vault=VaultConfig(path=tmp_path / "vault"),
        daemon=DaemonConfig(state_dir=tmp_path / ".opus"),
        pipeline=PipelineConfig(max_iterations=max_iterations),
        sandbox=SandboxConfig(kind="bwrap"),
        git=(git or GitConfig()).model_copy(update={"default_repo": repo}),
        pr=pr or PRConfig(),
        notify=notify or NotifyConfig(),
    )
    engine = ScriptedEngine(script(*rounds))
    runtime = build_runtime(settings, engine=engine, clock=clock)
    bench = Bench(tmp_path, repo, remote, runtime, engine, Intake(runtime.ctx))
    BENCHES.append(bench)
    return bench


BENCHES: list[Bench] = []
"""The benches of the running test, for the report of a failure (`conftest.py`)."""


SHOWN = ("passed", "exit_code", "timed_out", "duration_s", "output_tail", "summary", "error")


def account(bench: Bench) -> str:
    """What each job of `bench` did: stage runs, events and job log, for a failure's report."""
    lines: list[str] = []
    for job in bench.store.jobs():
        lines.append(f"== job {job.id} {job.fr_id}: {job.state.value}, iteration "
                     f"{job.iteration}, error {job.error!r}")  # fmt: skip
        for run in bench.store.stage_runs(job.id):
            detail = {k: v for k, v in run.output.items() if k in SHOWN}
            lines.append(f"  stage {run.stage.value} #{run.iteration} ok={run.ok} "
                         f"{run.started_at}..{run.finished_at} {detail}")  # fmt: skip
        lines += [f"  event {e.at} {e.kind}: {e.message}" for e in bench.store.events(job.id)]
        log = log_path(bench.ctx.settings.state_dir, job.id)
        if log.is_file():
            lines += ["  log:", *(f"    {line}" for line in log.read_text().splitlines())]
    return "\n".join(lines)


def stamp(moment: datetime) -> str:
    """A forge timestamp (second resolution, `Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
