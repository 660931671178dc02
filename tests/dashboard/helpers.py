"""A project with a real registry (SQLite file or PostgreSQL schema) full of jobs, and
the dashboard app over it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from opus.config import Settings, load_settings
from opus.daemon.logs import log_path
from opus.dashboard.app import create_app
from opus.dashboard.context import DashboardContext
from opus.dashboard.listen import Listen
from opus.dashboard.server import DashboardServer, build_context
from opus.domain import FeatureRequest, JobState, Stage, StageRun, Usage
from opus.registry import Registry, open_store
from opus.seams import Clock
from opus.testing.clock import FakeClock
from tests.e2e_daemon.harness import wait_until
from tests.registry.factory import make_fr

XSS = "<script>alert(1)</script>"
TOKEN = "t0ken-for-the-dashboard-tests"
SECRET = "sk-ant-not-a-real-key-0123456789"
LOOPBACK = Listen("127.0.0.1", 0)


@dataclass
class Project:
    root: Path
    settings: Settings
    store: Registry
    clock: FakeClock
    ids: dict[str, int]
    contexts: list[DashboardContext] = field(default_factory=list)

    def close(self) -> None:
        """Close every context made here (a PostgreSQL reader keeps a connection)."""
        for ctx in self.contexts:
            ctx.close()
        self.store.close()

    def context(self, environ: dict[str, str] | None = None, listen: Listen = LOOPBACK,
                clock: Clock | None = None) -> DashboardContext:
        env = {"OPUS_DASHBOARD_TOKEN": TOKEN, "ANTHROPIC_API_KEY": SECRET} if environ is None \
            else environ
        ctx = build_context(self.settings, env, listen=listen, clock=clock or self.clock)
        self.contexts.append(ctx)
        return ctx


@contextlib.contextmanager
def serving(ctx: DashboardContext) -> Iterator[DashboardServer]:
    """The app over `ctx` served by uvicorn on 127.0.0.1 (a free port) until the block ends."""
    server = DashboardServer(ctx, LOOPBACK)
    server.start()
    try:
        wait_until(lambda: server.started, "the dashboard to serve", 20)
        yield server
    finally:
        server.stop()


def make_project(root: Path, url: str | None = None, *,
                 start: datetime | None = None) -> Project:
    """Jobs in every lane: queued, running (round 2), awaiting review, failed, done."""
    (root / "vault").mkdir(parents=True, exist_ok=True)
    database = f'url = "{url}"' if url else ""
    (root / "opus.toml").write_text(
        f'[vault]\npath = "vault"\n[daemon]\nstate_dir = ".opus"\n[database]\n{database}\n'
        '[budget]\ndaily_usd = 7.5\n'
    )
    settings = load_settings(root / "opus.toml")
    clock = FakeClock(start)
    store = open_store(settings.database_url, clock=clock)
    ids = {fr_id: _run(store, clock, root, fr_id, title=title, rounds=rounds)
           for fr_id, title, rounds in (("FR-2", "Running one", 2), ("FR-3", "In review", 1),
                                        ("FR-4", XSS, 1), ("FR-5", "Done one", 1))}
    store.transition(ids["FR-3"], JobState.AWAITING_REVIEW, pr_url="https://forge.invalid/pr/3")
    store.transition(ids["FR-4"], JobState.FAILED, error=f"tests failed; key {SECRET}")
    store.add_event(ids["FR-4"], "failed", f"gave up {XSS}")
    store.transition(ids["FR-5"], JobState.AWAITING_REVIEW)
    store.transition(ids["FR-5"], JobState.DONE)
    ids["FR-1"] = store.enqueue(_fr("FR-1", "Queued one"), root).id
    log = log_path(settings.state_dir, ids["FR-2"])
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"line {n} {XSS}\n" for n in range(500)) + f"token {SECRET}\n")
    return Project(root, settings, store, clock, ids)


def _fr(fr_id: str, title: str) -> FeatureRequest:
    return make_fr(fr_id, f"# {title}\n\nSome *markdown* and {XSS} and `code`.", title=title)


def _run(store: Registry, clock: FakeClock, repo: Path, fr_id: str, *, title: str,
         rounds: int) -> int:
    """Enqueue and claim the FR's job, then record plan and code/test/review per round."""
    job_id = store.enqueue(_fr(fr_id, title), repo).id
    claimed = store.claim("worker-1", lease_s=86400)
    assert claimed is not None and claimed.id == job_id
    plan = {"summary": f"plan {XSS}", "steps": [{"title": "step one", "postcondition": "ok"}]}
    _stage(store, clock, job_id, Stage.PLAN, number=0, output=plan)
    for number in range(1, rounds + 1):
        _stage(store, clock, job_id, Stage.CODE, number=number, output={"summary": "coded"})
        passed = number == rounds
        _stage(store, clock, job_id, Stage.TEST, number=number,
               output={"passed": passed, "exit_code": 0 if passed else 1, "command": "pytest -q",
                "output_tail": f"1 failed {XSS}" if not passed else "3 passed"}, ok=passed)
        if passed:
            _stage(store, clock, job_id, Stage.REVIEW, number=number,
                   output={"verdict": "approve", "summary": "looks right",
                    "comments": [{"path": "src/a.py", "line": 3, "body": f"nit {XSS}"}]})
    store.update(job_id, stage=Stage.REVIEW, iteration=rounds)
    return job_id


def _stage(store: Registry, clock: FakeClock, job_id: int, stage: Stage, *, number: int,
           output: dict[str, object], ok: bool = True) -> None:
    start = clock.now()
    clock.advance(60)
    store.record_stage(StageRun(
        job_id=job_id, stage=stage, iteration=number, ok=ok, output=output,
        usage=Usage(input_tokens=100, output_tokens=50, cache_read_tokens=300,
                    cache_write_tokens=100),
        cost_usd=0.25, prompt_sha256="ab" * 32, commit="c0ffee", started_at=start,
        finished_at=start + timedelta(seconds=60),
    ))


def web_client(ctx: DashboardContext, **options: Any) -> TestClient:
    """httpx (through Starlette's TestClient) on the app, addressed as a browser on this
    machine addresses it."""
    return TestClient(create_app(ctx), base_url="http://127.0.0.1", **options)
