"""A daemon turn costs the registry the same number of transactions and statements
whether 4 or 40 notes wait in the queue: no per-note transaction, no job read twice."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event

from opus.config import DaemonConfig, GitConfig, SandboxConfig, Settings, VaultConfig
from opus.daemon.loop import Daemon
from opus.daemon.runtime import build_runtime
from opus.domain import JobState
from opus.registry import Registry
from opus.sandbox import bwrap_available
from opus.testing.engine import ScriptedEngine
from tests.conftest import make_repo

NOTE = """\
---
id: FR-{n}
title: Export report {n} as CSV
status: planned
priority: {priority}
test_command: pytest -q
---
# Summary

The monthly report {n} should be downloadable as CSV as well as PDF.
"""


def _turn_cost(tmp_path: Path, queued: int) -> tuple[int, int]:
    """(transactions, statements) of one steady daemon turn with `queued` FRs waiting."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# reports\n"})
    planned = tmp_path / "vault" / "10_features" / "03_planned"
    planned.mkdir(parents=True)
    for n in range(queued):
        priority = ("high", "medium", "low")[n % 3]
        (planned / f"FR-{n}.md").write_text(NOTE.format(n=n, priority=priority))
    settings = Settings(
        base_dir=tmp_path,
        vault=VaultConfig(path=tmp_path / "vault", move_notes=False, settle_s=0),
        daemon=DaemonConfig(state_dir=tmp_path / ".opus"),
        sandbox=SandboxConfig(kind="bwrap" if bwrap_available() else "none"),
        git=GitConfig(default_repo=repo),
    )
    runtime = build_runtime(settings, engine=ScriptedEngine({}))
    store = runtime.ctx.store
    assert isinstance(store, Registry)
    store.set_flag("paused", "1")  # the jobs stay queued; intake and supervision still run
    daemon = Daemon(runtime, environ={})
    daemon._tick()  # enqueues every note and writes `in-progress` back
    daemon._tick()
    assert len(store.jobs([JobState.QUEUED])) == queued
    counts = {"begin": 0, "statements": 0}

    def on_begin(_conn: object) -> None:
        counts["begin"] += 1

    def on_execute(*_args: object) -> None:
        counts["statements"] += 1

    engine = store._engine
    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        daemon._tick()
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
        store.close()
    return counts["begin"], counts["statements"]


def test_a_turn_costs_the_same_with_a_short_and_a_long_queue(tmp_path: Path) -> None:
    short = _turn_cost(tmp_path / "short", 4)
    long = _turn_cost(tmp_path / "long", 40)
    print(f"transactions, statements per turn: 4 queued {short}, 40 queued {long}")
    assert long == short
