"""Delivery fixtures: a target repo with an `origin` bare remote, an opus branch with
commits carrying the `Opus-Job:` trailer, jobs and settings pointing at them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from opus.config import PRConfig, Settings
from opus.domain import Job, JobState, Priority
from tests.conftest import run_git

BRANCH = "opus/fr-7-add-greeting"


def opus_commit(repo: Path, files: dict[str, str], *, job_id: int = 7, msg: str = "stage") -> str:
    """Write `files` and commit them as opus does (with the `Opus-Job:` trailer)."""
    _write(repo, files)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", msg, "--trailer", f"Opus-Job: {job_id}")
    return run_git(repo, "rev-parse", "HEAD")


def human_commit(repo: Path, files: dict[str, str], msg: str = "human fix") -> str:
    _write(repo, files)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", msg)
    return run_git(repo, "rev-parse", "HEAD")


def _write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def make_job(repo: Path, *, allowed: tuple[str, ...] = (), branch: str = BRANCH) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=7, fr_id="FR-7", title="Add greeting", state=JobState.RUNNING,
        priority=Priority.MEDIUM, content_hash="h", fr_path=repo / "FR-7.md", repo=repo,
        base="main", created_at=now, updated_at=now, branch=branch,
        spec={"allowed_paths": list(allowed)},
    )  # fmt: skip


def make_settings(tmp_path: Path, pr: PRConfig | None = None) -> Settings:
    return Settings(base_dir=tmp_path, pr=pr or PRConfig(), vault={"path": tmp_path / "vault"})


@pytest.fixture
def work(git_repo: Path, bare_remote: Path) -> Path:
    """`git_repo` on the opus branch with one opus commit, `origin` a bare repo."""
    run_git(git_repo, "checkout", "-q", "-b", BRANCH)
    opus_commit(git_repo, {"src/greet.py": "def greet() -> str:\n    return 'hi'\n"})
    return git_repo
