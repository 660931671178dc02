"""What runs between readiness and the first agent: the trusted gate's inputs, the
worktree's setup, the proof that the tests see the worktree, and the baseline.

**The trusted gate.** The test command, the setup command and every repo setting opus
obeys come from the FR, opus.toml, or the *base commit* (`git show <base>:.opus.toml`,
detection over the base commit's tree) — never from the worktree, whose every file the
agent can rewrite. The base commit is fixed when the job first starts (`spec.base_sha`).
If the agent changes `.opus.toml` anyway, the reviewer is told and the PR body says so.
"""

from __future__ import annotations

from typing import Any

from opus.domain import Job
from opus.errors import NotReady
from opus.git import git
from opus.pipeline import baseline
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.tester import REPO_CONFIG, TestOutcome, TreeView, command_for, repo_setting
from opus.pipeline.tester import run_tests as run_test_command
from opus.pipeline.workenv import (
    SetupOutcome,
    detect_setup,
    ensure_setup,
    env_prefix,
    exclude_generated,
    refresh_fingerprint,
)
from opus.pipeline.worktree import Worktree
from opus.pipeline.worktree_proof import check_node, check_python, python_import_name
from opus.seams import Sandbox

CONFIG_CHANGED = (
    f"this change modifies `{REPO_CONFIG}` (the repo's opus config). opus ignored the "
    "change: the test and setup commands came from the base commit. Check that the "
    "change belongs to this FR."
)


def base_sha(job: Job, wt: Worktree) -> str:
    """The commit the job's branch started from (fixed at the job's first start)."""
    stored = job.spec.get("base_sha")
    if isinstance(stored, str) and stored:
        return stored
    base = job.base or "HEAD"
    out = git("merge-base", f"refs/heads/{base}", "HEAD", cwd=wt.path, check=False)
    return out or git("rev-parse", "HEAD", cwd=wt.path)


def trusted_view(job: Job, wt: Worktree) -> TreeView:
    """The base commit's tree: where the gate's commands and settings come from."""
    return TreeView(wt.repo, base_sha(job, wt))


def test_command(job: Job, view: TreeView) -> str | None:
    """The FR's test command, else the base `.opus.toml`'s, else detected from the base."""
    return command_for(job.spec.get("test_command"), view)


def suite_command(view: TreeView) -> str | None:
    """The repo's own test suite on the base: `.opus.toml`'s command, else detected.

    The baseline runs this, not the FR's `test_command:`: an FR's command is what the
    change must make pass and often names tests the FR adds, so it fails on the base by
    design; the repo's suite failing there is what no change of the FR's can win.
    """
    return command_for(None, view)


def setup_command(job: Job, view: TreeView) -> str | None:
    """The FR's setup command, else the base `.opus.toml`'s, else detected; None: none."""
    own = job.spec.get("setup")
    if isinstance(own, str) and own.strip():
        return own.strip()
    return repo_setting(view, "setup") or detect_setup(view)


def config_changed(job: Job, wt: Worktree) -> bool:
    """True when the branch's commits change the repo's `.opus.toml`."""
    return REPO_CONFIG in wt.changed_paths(base_sha(job, wt))


def setup_sandbox(ctx: PipelineContext) -> Sandbox:
    """The sandbox for setup: the usual one, with network per `sandbox.setup_network`."""
    cfg = ctx.settings.sandbox
    if cfg.setup_network == cfg.network or cfg.kind == "none":
        return ctx.sandbox
    from opus.sandbox import sandbox_for

    update = {"network": cfg.setup_network}
    return sandbox_for(cfg.model_copy(update=update), state_dir=ctx.settings.state_dir)


def run_setup(job: Job, ctx: PipelineContext, control: JobControl, wt: Worktree) -> SetupOutcome:
    """Set the worktree's environment up (or find it up to date)."""
    exclude_generated(wt.path)
    command = setup_command(job, trusted_view(job, wt))
    if command is None:
        return SetupOutcome("", ran=False)
    control.touch(f"setup: {command}")
    pipeline = ctx.settings.pipeline
    outcome = ensure_setup(
        setup_sandbox(ctx), wt.path, command,
        timeout_s=pipeline.test_timeout_s, tail_bytes=pipeline.output_tail_bytes,
    )  # fmt: skip
    if outcome.ran:
        verdict = "done" if outcome.ok else f"FAILED (exit {outcome.exit_code})"
        control.log(f"setup {verdict} in {outcome.duration_s:.1f}s")
        ctx.store.add_event(job.id, "setup", f"`{command}` {verdict} in "
                            f"{outcome.duration_s:.1f}s")
    return outcome


def run_tests(job: Job, ctx: PipelineContext, wt: Worktree, command: str) -> TestOutcome:
    """The test command in the sandbox, with the worktree's environment first on PATH."""
    pipeline = ctx.settings.pipeline
    outcome = run_test_command(
        ctx.sandbox, wt.path, command,
        timeout_s=pipeline.test_timeout_s, tail_bytes=pipeline.output_tail_bytes,
        env_prefix=env_prefix(wt.path),
    )  # fmt: skip
    refresh_fingerprint(wt.path)
    return outcome


def prepare(job: Job, ctx: PipelineContext, control: JobControl, wt: Worktree) -> Job:
    """Before the first stage (and on every resume): setup, proof, then the baseline once.

    Raises `NotReady` (no token spent) when setup fails, when the tests would not see
    the worktree, or when the base's tests fail and `pipeline.baseline = "fail"`.
    """
    if "base_sha" not in job.spec:
        job = ctx.store.update(job.id, spec={**job.spec, "base_sha": base_sha(job, wt)})
    setup = run_setup(job, ctx, control, wt)
    if not setup.ok:
        raise NotReady(
            f"the worktree setup failed, before any change: {setup.report()}\n"
            "fix the setup command (`setup:` in the note, or setup = \"...\" in the repo's "
            f"{REPO_CONFIG})"
        )
    _prove(job, ctx, wt)
    if "baseline" not in job.spec and not _has_checkpoints(job, ctx):
        job = _baseline(job, ctx, control, wt)
    return job


def _prove(job: Job, ctx: PipelineContext, wt: Worktree) -> None:
    view = trusted_view(job, wt)
    check_node(wt.path)
    files = set(git("ls-tree", "-r", "--name-only", view.rev, cwd=wt.repo).splitlines())
    module = python_import_name(view, files)
    if module is not None:
        check_python(ctx.sandbox, wt.path, module)


def _has_checkpoints(job: Job, ctx: PipelineContext) -> bool:
    return any(run.ok for run in ctx.store.stage_runs(job.id))


def _baseline(job: Job, ctx: PipelineContext, control: JobControl, wt: Worktree) -> Job:
    mode = ctx.settings.pipeline.baseline
    if mode == "skip":
        return job
    command = suite_command(trusted_view(job, wt))
    if command is None:
        control.log("baseline skipped: the repo names no test suite of its own")
        return job
    control.touch(f"baseline: {command}")
    outcome = run_tests(job, ctx, wt, command)
    result: dict[str, Any] = baseline.record(outcome)
    ctx.store.add_event(job.id, "baseline", result["summary"])
    control.log(result["summary"])
    if not outcome.passed and mode == "fail":
        # Not kept in the spec: `opus retry` after a fix on the base runs it again.
        raise NotReady(baseline.failure_message(outcome, job.base or "the base branch"))
    return ctx.store.update(job.id, spec={**job.spec, "baseline": result})
