"""Build the parts a daemon (or a one-shot command) runs on, from the settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opus.clock import SystemClock
from opus.config import Settings
from opus.domain import Job
from opus.engines import engine_at_first_use
from opus.forges import forge_for
from opus.notify import AppriseNotifier
from opus.pipeline.context import PipelineContext
from opus.registry import open_store
from opus.sandbox import sandbox_for
from opus.seams import Clock, Engine, Forge


@dataclass
class Runtime:
    ctx: PipelineContext
    notifier: AppriseNotifier
    own_engine: bool = True
    """True when the engine is the one the settings name (built where it is used);
    False when the caller passed an engine object, which only this process holds."""


def build_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    create_tables: bool = True,
) -> Runtime:
    """Open the store, make the state dir, and choose engine, sandbox and forge by name.
    `create_tables=False` where the registry is known to exist (a job process)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    store = open_store(settings.database_url, clock=clock, create=create_tables)
    notifier = AppriseNotifier(settings.notify.urls, settings.state_dir / "outbox", clock=clock)
    sandbox = sandbox_for(settings.sandbox, state_dir=settings.state_dir)
    ctx = PipelineContext(
        settings=settings,
        store=store,
        engine=engine or engine_at_first_use(settings.agents, settings.sandbox),
        sandbox=sandbox,
        notifier=notifier,
        clock=clock,
        forge_for=lambda job: _forge(settings, job),
    )
    return Runtime(ctx, notifier, own_engine=engine is None)


def _forge(settings: Settings, job: Job) -> Forge:
    # The token is read here, at the edge, and only opus's own process holds it.
    token = os.environ.get(settings.pr.token_env)
    return forge_for(
        settings.pr,
        repo=job.repo,
        remote=settings.git.remote,
        vault_root=settings.vault_path,
        token=token,
        features_dir=settings.vault.features_dir,
    )
