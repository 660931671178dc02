"""A small project for end-to-end runs: a real repo with a bare remote, a vault, settings.

In-process runs go through `run_fr`: the note is scanned from the vault, enqueued in a
real SQLite registry, claimed, and handed to `run_job` with the real `anthropic` engine
(its SDK client reads ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, pointed at the stand-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opus.config import (
    AgentsConfig,
    DaemonConfig,
    GitConfig,
    PipelineConfig,
    SandboxConfig,
    Settings,
    VaultConfig,
)
from opus.daemon.runtime import build_runtime
from opus.domain import Job
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.executor import Outcome, run_job
from opus.sandbox import bwrap_available
from opus.vault import scan_vault
from tests.conftest import make_repo, run_git
from tests.e2e_pipeline.conversations import REPO_FILES, TEST_COMMAND

FR_ID = "FR-7"
TITLE = "Add subtraction"
BODY = "# Summary\n\nAdd `sub(a, b)` to calc.py, returning a - b, with a test.\n"
SANDBOX = "bwrap" if bwrap_available() else "none"


@dataclass(frozen=True)
class Project:
    root: Path
    repo: Path
    remote: Path
    vault: Path

    @property
    def state_dir(self) -> Path:
        return self.root / ".opus"

    def settings(self, *, max_turns: int = 60) -> Settings:
        """Settings as a user would write them: sqlite in the state dir, local PRs."""
        return Settings(
            vault=VaultConfig(path=self.vault),
            daemon=DaemonConfig(state_dir=self.state_dir),
            pipeline=PipelineConfig(max_iterations=3, stage_timeout_s=120, max_turns=max_turns),
            agents=AgentsConfig(max_retries=0),
            sandbox=SandboxConfig(kind=SANDBOX, command_timeout_s=30),
            git=GitConfig(default_repo=self.repo),
            base_dir=self.root,
        )

    def branch_log(self, branch: str) -> str:
        """Subjects and trailers of the commits on `branch` in the bare remote."""
        return run_git(self.remote, "log", "--format=%s%n%b%n--", f"main..{branch}")

    def remote_file(self, branch: str, path: str) -> str:
        return run_git(self.remote, "show", f"{branch}:{path}")


def make_project(root: Path) -> Project:
    """A repo (`main`, calc.py) pushed to a bare `origin`, and an empty vault."""
    repo = make_repo(root / "repo", REPO_FILES)
    remote = root / "remote.git"
    run_git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main")
    vault = root / "vault"
    (vault / "10_features" / "03_planned").mkdir(parents=True)
    return Project(root=root, repo=repo, remote=remote, vault=vault)


def write_fr(project: Project, *extra: str, status: str = "planned") -> Path:
    """The FR note; `extra` are additional frontmatter lines (e.g. "base: develop")."""
    front = [
        f"id: {FR_ID}",
        f"title: {TITLE}",
        f"status: {status}",
        f"test_command: {TEST_COMMAND}",
        *extra,
    ]
    note = project.vault / "10_features" / "03_planned" / f"{FR_ID}.md"
    note.write_text("---\n" + "\n".join(front) + "\n---\n" + BODY, encoding="utf-8")
    return note


@dataclass(frozen=True)
class Run:
    job: Job
    outcome: Outcome
    ctx: PipelineContext


WORKER = "e2e-worker"


def claim_fr(settings: Settings) -> tuple[Job, PipelineContext]:
    """Scan the vault, enqueue the one FR and claim its job, as the daemon would."""
    ctx = build_runtime(settings).ctx
    scan = scan_vault(settings.vault_path, default_repo=settings.default_repo)
    assert not scan.invalid, scan.invalid
    (fr,) = scan.valid
    assert fr.repo is not None
    queued = ctx.store.enqueue(fr, fr.repo)
    job = ctx.store.claim(WORKER, 600)
    assert job is not None and job.id == queued.id
    return job, ctx


def run_fr(project: Project, settings: Settings) -> Run:
    """Claim the one FR's job and run it to an outcome."""
    job, ctx = claim_fr(settings)
    outcome = run_job(job, ctx, JobControl(job.id))
    return Run(ctx.store.get(job.id), outcome, ctx)
