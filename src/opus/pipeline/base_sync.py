"""A round on an open PR whose base moved: merge the base into the job's branch first.

The PR poller (`opus.daemon.base_watch`) queues the round with `job.spec["base_merge"]`
naming the base commit. When the job runs, after a human's fast-forward commits are
adopted, `merge_moved_base` merges that commit into the worktree:

- already in the branch (a human merged it meanwhile): nothing to do, the round ends at
  once (no coder, no tokens);
- clean: the merge commit (trailer `Opus-Job:`) is the round's CODE checkpoint, no agent
  runs, and the round goes test → deliver;
- conflicted: the merge stays in progress and the coder is told the conflicted files and
  both sides' intent; its CODE checkpoint commits the merge (`Worktree.commit`).

A crash anywhere in this resumes: the worktree is reset to the last checkpoint, so the
merge is simply made again. Conflict markers still there after the coder mean it could
not resolve them: `check_resolved` raises `ConflictUnresolved` and the executor hands the
PR to a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opus.delivery.base_merge import (
    conflict_report,
    markers_left,
    merge_message,
    merging,
    start_merge,
)
from opus.delivery.reactions import ROUND_FEEDBACK, pending_feedback, round_of, without_feedback
from opus.domain import Job, Stage, StageRun
from opus.errors import OpusError
from opus.git import git, is_ancestor
from opus.pipeline.context import JobControl, PipelineContext
from opus.pipeline.worktree import Worktree

BASE_MERGE = "base_merge"
"""Key in a job's spec: {"sha", "label", "head", "conflicts"} of the base to merge."""
MERGE_ONLY = "merge_only"
"""Set in a CODE run's output when the round's code was a clean merge (no agent)."""
KINDS = ("conflict", "update")
"""Reaction kinds whose rounds start with a base merge."""


class ConflictUnresolved(OpusError):
    """The coder left conflict markers in files of a base merge."""

    retryable = False

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


def base_merge(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The base merge a round was queued for, if any."""
    info = spec.get(BASE_MERGE)
    return info if isinstance(info, dict) and info.get("sha") else None


def merge_moved_base(job: Job, ctx: PipelineContext, wt: Worktree, control: JobControl) -> Job:
    """Merge the moved base into the worktree for a round queued to do so (see module)."""
    info = base_merge(job.spec)
    if info is None or pending_feedback(job.spec) is None:
        return job
    runs = [run for run in ctx.store.stage_runs(job.id) if run.ok]
    if runs and runs[-1].stage is Stage.CODE:
        # The merge was recorded but the round's feedback not yet dropped (a crash).
        return ctx.store.update(job.id, spec=consumed(job.spec))
    reaction = round_of(job.spec, (runs[-1].iteration if runs else 0) + 1)
    if reaction is None or reaction.kind not in KINDS:
        # Another reaction (a review, CI) started this round: an old base merge is history.
        return ctx.store.update(job.id, spec={k: v for k, v in job.spec.items()
                                              if k != BASE_MERGE})  # fmt: skip
    sha, label = str(info["sha"]), str(info.get("label") or job.base or "base")
    _have_commit(ctx, wt, job, sha)
    if is_ancestor(wt.path, sha, "HEAD"):
        control.log(f"{label} ({sha[:10]}) is already in {wt.branch}: nothing to merge")
        return ctx.store.update(job.id, spec=consumed(job.spec))
    author = (ctx.settings.git.author_name, ctx.settings.git.author_email)
    conflicts = start_merge(wt.path, sha, label=label, author=author)
    if not conflicts:
        return _clean(job, ctx, wt, control, info=info,
                      delivered_round=runs[-1].iteration if runs else 0)
    control.log(f"merging {label} ({sha[:10]}) conflicts in {', '.join(conflicts)}")
    report = conflict_report(wt.path, fr=f"{job.fr_id} {job.title}\n{_body(job)}",
                             label=label, sha=sha, conflicts=conflicts)  # fmt: skip
    spec = {**job.spec, ROUND_FEEDBACK: report,
            BASE_MERGE: {**info, "conflicts": list(conflicts)}}  # fmt: skip
    return ctx.store.update(job.id, spec=spec)


def _clean(
    job: Job,
    ctx: PipelineContext,
    wt: Worktree,
    control: JobControl,
    *,
    info: Mapping[str, Any],
    delivered_round: int,
) -> Job:
    sha, label = str(info["sha"]), str(info.get("label") or "base")
    author = (ctx.settings.git.author_name, ctx.settings.git.author_email)
    wt.commit(merge_message(label, sha, wt.branch, ()), job_id=job.id, author=author)
    head = wt.head()
    if ctx.settings.git.remote in git("remote", cwd=wt.path).split():
        wt.push_wip(ctx.settings.git.remote, job.id)
    now = ctx.clock.now()
    summary = f"Merged {label} ({sha[:10]}) into {wt.branch}: the base moved, no conflicts."
    ctx.store.record_stage(StageRun(
        job_id=job.id, stage=Stage.CODE, iteration=delivered_round + 1, ok=True,
        output={"summary": summary, MERGE_ONLY: True, "merged": sha},
        commit=head, started_at=now, finished_at=now,
    ))  # fmt: skip
    control.log(summary)
    return ctx.store.update(job.id, spec=consumed(job.spec), stage=Stage.CODE,
                            iteration=delivered_round + 1)  # fmt: skip


def consumed(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` once its base merge is done (or given up): no feedback, no base to merge."""
    return {k: v for k, v in without_feedback(spec).items() if k != BASE_MERGE}


def check_resolved(job: Job, wt: Worktree) -> None:
    """After the coder of a conflicted base merge: raise `ConflictUnresolved` (and abort
    the merge, back to the last checkpoint) when a conflicted file still has markers."""
    info = base_merge(job.spec)
    if info is None or not merging(wt.path):
        return
    files = [str(path) for path in info.get("conflicts") or ()]
    left = markers_left(wt.path, files)
    if not left:
        return
    wt.discard_uncommitted()  # a hard reset also ends the merge in progress
    raise ConflictUnresolved(
        f"the coder left conflict markers in {', '.join(left)} while merging "
        f"{info.get('label') or 'the base'} ({str(info['sha'])[:10]})", left)


def _have_commit(ctx: PipelineContext, wt: Worktree, job: Job, sha: str) -> None:
    """Fetch the base when the commit is not here (another host's poller saw it)."""
    if _exists(wt, sha):
        return
    remote = ctx.settings.git.remote
    if job.base and remote in git("remote", cwd=wt.path).split():
        git("fetch", "--quiet", "--no-tags", remote, f"refs/heads/{job.base}", cwd=wt.path)


def _exists(wt: Worktree, sha: str) -> bool:
    return bool(git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}", cwd=wt.path,
                    check=False))


def _body(job: Job) -> str:
    return str(job.spec.get("body", "")).strip()
