"""One job as its page and `/api/v1/jobs/{id}` show it: every figure from the registry.

Pure but for two reads of files the job left: its log's tail (capped) and the diff
stat of its branch (`git diff --stat`, bounded in time). Every text passes the redactor.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opus.conversation.waiting import conversation_of, waiting_of
from opus.dashboard.redact import Redactor
from opus.domain import UNFINISHED_REASON, Event, Job, JobState, Stage, StageRun

LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 64 * 1024
TEXT_CAP = 20_000
"""The longest test output or comment shown; the rest is cut (and says so)."""
DIFF_TIMEOUT_S = 5.0
DIFF_STAT_LINES = 60


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _cap(text: str, limit: int = TEXT_CAP) -> str:
    return text if len(text) <= limit else text[-limit:] + "\n(cut: the start is not shown)"


def stage_row(run: StageRun, *, current: bool = False) -> dict[str, Any]:
    """A checkpoint as a timeline row: duration, tokens, cache-read share, cost, prompt sha,
    and its result: `ok`, `failed`, or for a run its spend was metered into while it had not
    ended (designs/pipeline.md, "Spend, call by call") `running` when it is the `current`
    stage of a running job, else `cut short`."""
    usage = run.usage
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    duration = None
    if run.started_at is not None and run.finished_at is not None:
        duration = max(0.0, (run.finished_at - run.started_at).total_seconds())
    return {
        "stage": run.stage.value, "round": run.iteration, "ok": run.ok,
        "result": _result(run, current=current),
        "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
        "duration_s": duration, "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens, "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens, "tokens": usage.total,
        "cache_read_share": usage.cache_read_tokens / prompt if prompt else None,
        "cost_usd": round(run.cost_usd, 6), "prompt_sha256": run.prompt_sha256,
        "commit": run.commit,
    }


def _result(run: StageRun, *, current: bool) -> str:
    if run.ok:
        return "ok"
    if run.output.get("stop_reason") == UNFINISHED_REASON:
        return "running" if current else "cut short"
    return "failed"


def rounds(runs: Sequence[StageRun], *, running: bool = False) -> list[dict[str, Any]]:
    """Checkpoints grouped by round (0: the plan, before the first code round); with
    `running` (the job is), its last run may be the stage under way."""
    by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for index, run in enumerate(runs):
        current = running and index == len(runs) - 1
        by_round[run.iteration].append(stage_row(run, current=current))
    return [{"round": number, "stages": by_round[number]} for number in sorted(by_round)]


def _latest(runs: Sequence[StageRun], stage: Stage) -> StageRun | None:
    found = [run for run in runs if run.stage is stage]
    return found[-1] if found else None


def _plan(runs: Sequence[StageRun], clean: Redactor) -> dict[str, Any] | None:
    run = _latest(runs, Stage.PLAN)
    if run is None or not run.ok:
        return None
    steps = run.output.get("steps") or []
    return {
        "summary": clean.clean(str(run.output.get("summary", ""))),
        "steps": [{"title": clean.clean(str(step.get("title", ""))),
                   "postcondition": clean.clean(str(step.get("postcondition", "")))}
                  for step in steps if isinstance(step, dict)],
    }


def _test(runs: Sequence[StageRun], clean: Redactor) -> dict[str, Any] | None:
    run = _latest(runs, Stage.TEST)
    if run is None:
        return None
    out = run.output
    return {
        "round": run.iteration, "passed": bool(out.get("passed", run.ok)),
        "command": clean.clean(str(out.get("command") or "")),
        "exit_code": out.get("exit_code"), "timed_out": bool(out.get("timed_out")),
        "output_tail": clean.clean(_cap(str(out.get("output_tail") or out.get("report") or ""))),
    }


def _review(runs: Sequence[StageRun], clean: Redactor) -> dict[str, Any] | None:
    run = _latest(runs, Stage.REVIEW)
    if run is None:
        return None
    comments = run.output.get("comments") or []
    return {
        "round": run.iteration, "verdict": run.output.get("verdict"),
        "summary": clean.clean(_cap(str(run.output.get("summary") or run.output.get("report")
                                        or ""))),
        "comments": [{"path": clean.clean(str(c.get("path", ""))), "line": c.get("line"),
                      "body": clean.clean(_cap(str(c.get("body", ""))))}
                     for c in comments if isinstance(c, dict)],
    }


def _question(item: dict[str, Any], clean: Redactor) -> dict[str, Any]:
    return {key: (clean.clean(value) if isinstance(value, str) else
                  [clean.clean(str(v)) for v in value] if isinstance(value, list) else value)
            for key, value in item.items()}


def _waiting(job: Job, clean: Redactor) -> dict[str, Any] | None:
    """What the job asks a person (questions, or a plan to approve), if it waits."""
    waiting = waiting_of(job)
    if waiting is None:
        return None
    data = waiting.as_dict()
    data["questions"] = [_question(q, clean) for q in data["questions"]]
    data["problem"] = clean.clean(waiting.problem) if waiting.problem else None
    return data


def _conversation(job: Job, clean: Redactor) -> list[dict[str, Any]]:
    rounds = [answered.as_dict() for answered in conversation_of(job)]
    return [{**r, "questions": [_question(q, clean) for q in r["questions"]]} for r in rounds]


def event_row(event: Event, clean: Redactor) -> dict[str, Any]:
    return {"id": event.id, "job": event.job_id, "at": _iso(event.at), "kind": event.kind,
            "message": clean.clean(_cap(event.message))}


def job_row(job: Job, clean: Redactor) -> dict[str, Any]:
    """The job's own columns (no spec: it holds the FR body, shown rendered instead)."""
    return {
        "id": job.id, "fr": job.fr_id, "title": clean.clean(job.title), "state": job.state.value,
        "priority": job.priority.value, "stage": job.stage.value if job.stage else None,
        "round": job.iteration, "branch": job.branch, "base": job.base, "repo": str(job.repo),
        "pr": clean.clean(job.pr_url) if job.pr_url else None,
        "error": clean.clean(job.error) if job.error else None,
        "cost_usd": round(job.cost_usd, 6), "worker": job.worker,
        "created_at": _iso(job.created_at), "updated_at": _iso(job.updated_at),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
    }


@dataclass(frozen=True)
class JobFiles:
    """Where a job's files are: its log, and the repo its branch lives in."""

    log: Path
    repo: Path


def job_detail(job: Job, runs: Sequence[StageRun], events: Sequence[Event],
               files: JobFiles, clean: Redactor) -> dict[str, Any]:
    """Everything the job page shows, JSON-ready."""
    return {
        "job": job_row(job, clean),
        "fr_body": clean.clean(str(job.spec.get("body") or "")),
        "waiting": _waiting(job, clean),
        "conversation": _conversation(job, clean),
        "rounds": rounds(runs, running=job.state is JobState.RUNNING),
        "plan": _plan(runs, clean),
        "test": _test(runs, clean),
        "review": _review(runs, clean),
        "diff_stat": diff_stat(files.repo, job.base, job.branch),
        "log_tail": log_tail(files.log, clean),
        "events": [event_row(event, clean) for event in events],
    }


def log_tail(path: Path, clean: Redactor) -> dict[str, Any]:
    """The last lines of the job's log, at most `LOG_TAIL_LINES` and `LOG_TAIL_BYTES`."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            data = fh.read(LOG_TAIL_BYTES)
    except OSError:
        return {"lines": [], "truncated": False}
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        lines = lines[1:]  # the first may start mid-line
    truncated = size > LOG_TAIL_BYTES or len(lines) > LOG_TAIL_LINES
    return {"lines": [clean.clean(line) for line in lines[-LOG_TAIL_LINES:]],
            "truncated": truncated}


def diff_stat(repo: Path, base: str | None, branch: str | None) -> str | None:
    """`git diff --stat base...branch` in the job's repo; None where it cannot be read
    (no branch yet, or the repo is on another host)."""
    if not branch or (not (repo / ".git").exists() and not (repo / "HEAD").exists()):
        return None
    command = ["git", "diff", "--stat=100", f"{base or 'HEAD'}...{branch}", "--"]
    try:
        proc = subprocess.run(command, cwd=repo, capture_output=True, text=True,
                              timeout=DIFF_TIMEOUT_S, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    lines = proc.stdout.rstrip("\n").splitlines()
    if len(lines) > DIFF_STAT_LINES:
        more = f"... {len(lines) - DIFF_STAT_LINES} more"
        lines = [*lines[: DIFF_STAT_LINES - 1], more, lines[-1]]
    return "\n".join(lines) or None
