"""`opus demo`: one FR through every stage, in a throwaway vault and git repo.

Without an API key (or when the user declines to spend) the agents are the scripted
rehearsal from `opus.testing`, and the output says so plainly.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from opus.config import DaemonConfig, GitConfig, SandboxConfig, Settings, VaultConfig
from opus.daemon.logs import configure_logging
from opus.daemon.loop import Daemon
from opus.daemon.runtime import build_runtime
from opus.domain import JobState
from opus.errors import SandboxError
from opus.git import git
from opus.seams import Engine, JobStore
from opus.vault import init_vault

DEMO_ID = "DEMO-1"
DEMO_NOTE = "DEMO-1-rehearsal.md"
DEMO_FR = """\
---
id: DEMO-1
title: Add a rehearsal module
status: planned
priority: high
test_command: python3 test_opus_rehearsal.py
allowed_paths: ["*.py"]
---
# Summary

Add `opus_rehearsal.py` with a function `rehearsal()` that returns the string
`"DEMO-1"`, and `test_opus_rehearsal.py` that checks it when run with `python3`.
"""


def run_demo(directory: Path | None, *, assume_yes: bool, environ: Mapping[str, str]) -> int:
    """Build the demo, run the daemon until the FR awaits review, and show the result."""
    root = (directory or Path(tempfile.mkdtemp(prefix="opus-demo-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    configure_logging("INFO", environ=environ)
    repo = _make_repo(root)
    init_vault(root)
    _place_demo_note(root / "vault" / "10_features")
    settings = _settings(root, repo)
    engine = _choose_engine(environ, assume_yes)
    runtime = build_runtime(settings, engine=engine)
    print(f"demo vault: {root / 'vault'}\ndemo repo:  {repo}\n", flush=True)
    code = Daemon(runtime, once=True, environ={}).run()
    _report(runtime.ctx.store, settings, root, repo)
    return code or _finished(runtime.ctx.store, root)


def _finished(store: JobStore, root: Path) -> int:
    """0 when the demo FR reached review; else say why, and 1 (the demo could not finish)."""
    job = store.latest_for_fr(DEMO_ID)
    if job is not None and job.state in (JobState.AWAITING_REVIEW, JobState.DONE):
        return 0
    state = "never queued" if job is None else job.state.value
    why = (job.error or "").strip().splitlines()[:1] if job is not None else []
    more = f"opus logs {DEMO_ID}" if job is not None else "opus status"
    print(f"\nthe demo could not finish: {DEMO_ID} is {state}"
          + (f": {why[0]}" if why else "")
          + f"\nmore: cd {root} && {more}", file=sys.stderr)
    return 1


def _place_demo_note(features: Path) -> None:
    # A second demo in the same dir must not add a twin (a duplicate id makes both invalid).
    if any(features.rglob(DEMO_NOTE)):
        return
    note = features / "03_planned" / DEMO_NOTE
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(DEMO_FR, encoding="utf-8")


def _make_repo(root: Path) -> Path:
    repo, remote = root / "demo-repo", root / "demo-remote.git"
    if (repo / ".git").exists():
        return repo
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# demo\n\nA repository for the opus demo.\n")
    identity = ["-c", "user.name=opus demo", "-c", "user.email=demo@opus.invalid"]
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git(*identity, "commit", "-q", "-m", "initial commit", cwd=repo)
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=root)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    return repo


def _settings(root: Path, repo: Path) -> Settings:
    return Settings(
        vault=VaultConfig(path=root / "vault"),
        daemon=DaemonConfig(state_dir=root / ".opus", poll_active_s=0.2, poll_idle_s=1),
        git=GitConfig(default_repo=repo),
        sandbox=SandboxConfig(kind=_sandbox_kind()),
        base_dir=root,
    )


def _sandbox_kind() -> str:
    from opus.sandbox import check_sandbox

    try:
        check_sandbox(SandboxConfig(kind="bwrap"))
    except SandboxError as exc:
        logging.getLogger(__name__).warning("demo runs without a sandbox: %s", exc)
        return "none"
    return "bwrap"


def _choose_engine(environ: Mapping[str, str], assume_yes: bool) -> Engine | None:
    from opus.testing.engine import ScriptedEngine

    question = "ANTHROPIC_API_KEY is set: run the demo with Claude (a few cents)? [y/N] "
    if environ.get("ANTHROPIC_API_KEY") and (assume_yes or _confirm(question)):
        print("the agents are Claude, through the Anthropic API\n")
        return None
    print("REHEARSAL: the agents are scripted (no Anthropic API call, no cost); set "
          "ANTHROPIC_API_KEY to run them with Claude\n")
    return ScriptedEngine.demo()


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")


def _report(store: JobStore, settings: Settings, root: Path, repo: Path) -> None:
    from opus.clock import SystemClock
    from opus.status import View, render_status, status_report

    report = status_report(store, settings, SystemClock().now())
    print("\n" + render_status(report, View(vault_root=settings.vault_path, base_dir=root)))
    review = sorted((root / "vault" / "10_features" / "05_review").glob("*.md"))
    for note in review:
        what = ("the pull request (review it, then set its `decision:`)"
                if note.name.startswith("PR-") else "the FR, now `status: review`")
        print(f"\nin the vault, {what}: {note}")
    log = git("log", "--oneline", "--all", "-n", "5", cwd=repo, check=False)
    print(f"\nbranches pushed to the demo remote:\n{log}\n\nnext: `opus init ~/backlog`")
