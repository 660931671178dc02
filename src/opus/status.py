"""`opus status`: everything that decides whether work moves, read without touching the vault.

The report is built from the registry (jobs, the pause flag, today's spend, the daemons'
presence records with their breakers and dependency waits) and from the list of notes
opus cannot use that the daemon keeps in the state dir. `render_status` fits it in 100
columns unless asked to be wide; `StatusReport.as_dict` is `opus status --json`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opus.control import PAUSED_FLAG, is_paused
from opus.delivery.reactions import is_ready
from opus.domain import DaemonRecord, Job, JobState
from opus.lightconfig import LightSettings
from opus.presence import is_alive
from opus.seams import JobReader
from opus.vault.problems import NoteProblem, read_problems

if TYPE_CHECKING:
    from opus.config import Settings

WIDTH = 100
CLAIMING_ROLES = ("all", "worker")
RECENT_ENDED = 20
"""How many ended jobs (done, failed, cancelled) `opus status` lists, the latest; every
job that has not ended is always listed, and `--all` lists the rest."""


@dataclass(frozen=True)
class StatusRow:
    """One job, or one planned FR not queued yet (`job` None), and why it waits."""

    job: int | None
    fr: str
    title: str
    state: str
    stage: str | None
    iteration: int
    elapsed_s: float | None
    cost_usd: float
    pr: str | None
    error: str | None
    waiting: str | None = None
    """Why a queued job or planned FR does not start: `waiting on FR-8` (`FR-8 (failed)`
    when it will not get done without a person), `paused`,
    `daily budget`, `breaker open`, `no daemon running`; for a job waiting for a person
    `needs you (<how long>): <note>`; None when nothing holds it."""
    waited_s: float | None = None
    """How long a job in `waiting_input` has waited for a person."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DaemonView:
    """A daemon's record as seen from here: alive or not, and how old its last beat is."""

    record: DaemonRecord
    beat_age_s: float
    alive: bool

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self.record).items() if k != "info"}
        turn = self.record.info.get("turn_at")
        return {**fields, "beat_age_s": self.beat_age_s, "alive": self.alive,
                "last_turn_at": str(turn) if turn else None}


@dataclass(frozen=True)
class BreakerView:
    key: str
    daemon: str
    state: str
    failures: int
    reopens_at: str | None
    last_error: str | None


@dataclass(frozen=True)
class StatusReport:
    daemons: list[DaemonView]
    paused: bool
    breakers: list[BreakerView]
    spent_today_usd: float
    daily_usd: float
    jobs: list[StatusRow]
    problems: list[NoteProblem] = field(default_factory=list)
    now: datetime | None = None
    quiet_turn_s: float | None = None
    """A live daemon whose loop has not turned for longer is shown as possibly stuck."""
    older_ended: int = 0
    """Ended jobs not listed (older than the latest `RECENT_ENDED`)."""

    @property
    def running(self) -> list[DaemonView]:
        return [daemon for daemon in self.daemons if daemon.alive]

    def as_dict(self) -> dict[str, Any]:
        return {
            "daemon_running": bool(self.running),
            "daemons": [daemon.as_dict() for daemon in self.daemons],
            "paused": self.paused,
            "breakers": [asdict(breaker) for breaker in self.breakers],
            "budget": {"spent_today_usd": round(self.spent_today_usd, 4),
                       "daily_usd": float(self.daily_usd)},
            "jobs": [row.as_dict() for row in self.jobs],
            "older_ended_jobs": self.older_ended,
            "problems": [asdict(problem) for problem in self.problems],
        }


# --------------------------------------------------------------------------- building


PREPARING = "preparing: worktree, setup, baseline tests"
"""What a running job does before its first stage; `opus logs FR` shows each step."""


def activity(state: str, stage: str | None) -> str | None:
    """What a running job with no stage yet is doing (setup can take minutes), for the
    tables; the JSON's `waiting` stays None: nothing holds the job."""
    return PREPARING if state == JobState.RUNNING.value and stage is None else None


def shown_stage(job: Job) -> str | None:
    """The job's stage, or `ready` for a PR approved and green (as the FR note says)."""
    if job.state is JobState.AWAITING_REVIEW and is_ready(job.spec):
        return "ready"
    return job.stage.value if job.stage else None


def status_report(
    store: JobReader,
    settings: Settings | LightSettings,
    now: datetime,
    *,
    host: str | None = None,
    jobs: Sequence[Job] | None = None,
    ended_shown: int | None = RECENT_ENDED,
) -> StatusReport:
    """Everything `opus status` shows, as of `now`. `jobs`: already read; else every job
    that has not ended and the latest `ended_shown` ended ones (None: all) are read here."""
    if not isinstance(settings, LightSettings):
        settings = LightSettings.of(settings)
    host = host or socket.gethostname()
    records = store.daemons()
    daemons = [_daemon_view(record, now, host) for record in records]
    live = {view.record.id for view in daemons if view.alive}
    breakers = [b for r in records if r.id in live for b in _breakers(r)]
    report = StatusReport(
        daemons=daemons,
        paused=is_paused(store),
        breakers=breakers,
        spent_today_usd=store.cost_since(day_start(now)),
        daily_usd=settings.daily_usd,
        jobs=[],
        problems=read_problems(settings.state_dir),
        now=now,
        # An idle loop sleeps at most poll_idle_s between turns; twice that and a minute
        # more without a turn while the heartbeat goes on means the loop is wedged.
        quiet_turn_s=2 * settings.poll_idle_s + 60,
    )
    blocker = _common_blocker(report, settings.engine)
    older = 0
    if jobs is None:
        jobs, older = _jobs_to_list(store, ended_shown)
    rows = [_row(job, now, blocker, report.breakers) for job in _newest_first(jobs)]
    waiting = [w for r in records if r.id in live for w in r.info.get("waiting", [])]
    rows += _waiting_rows(waiting, {row.fr for row in rows if row.state == "queued"})
    return replace(report, jobs=rows, older_ended=older)


def _jobs_to_list(store: JobReader, ended_shown: int | None) -> tuple[list[Job], int]:
    """Every job that has not ended and the latest `ended_shown` ended ones (None: every
    job), and how many ended jobs that leaves out. A year of work is tens of thousands of
    ended jobs: reading them all took seconds."""
    if ended_shown is None:
        return list(store.jobs()), 0
    ended = [state for state in JobState if state.ended]
    jobs = [*store.jobs([state for state in JobState if not state.ended]),
            *store.latest_jobs(ended, limit=ended_shown)]
    return jobs, max(0, store.count_jobs(ended) - ended_shown)


def day_start(now: datetime) -> datetime:
    """Midnight of `now`'s day in its time zone: where `budget.daily_usd` counts from."""
    return datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)


def _newest_first(jobs: Iterable[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: job.id, reverse=True)


def _daemon_view(record: DaemonRecord, now: datetime, host: str) -> DaemonView:
    age_s = round(max(0.0, (now - record.beat_at).total_seconds()), 1)
    return DaemonView(record, age_s, is_alive(record, now, host=host))


def _breakers(record: DaemonRecord) -> list[BreakerView]:
    where = f"{record.host}:{record.pid}"
    return [
        BreakerView(key=str(item.get("key")), daemon=where, state=str(item.get("state")),
                    failures=int(item.get("failures") or 0), reopens_at=item.get("reopens_at"),
                    last_error=item.get("last_error"))
        for item in record.info.get("breakers", [])
    ]


def _common_blocker(report: StatusReport, engine: str) -> str | None:
    """What holds every queued job at once, in the order the daemon checks it."""
    if not any(d.record.role in CLAIMING_ROLES for d in report.running):
        return "no daemon running" if not report.running else "no worker running"
    if report.paused:
        return PAUSED_FLAG
    if report.spent_today_usd >= report.daily_usd:
        return "daily budget"
    if any(b.state == "open" and (b.key == f"engine:{engine}" or b.key.startswith("database:"))
           for b in report.breakers):
        return "breaker open"
    return None


def _row(
    job: Job, now: datetime, blocker: str | None, breakers: Sequence[BreakerView]
) -> StatusRow:
    elapsed = None
    if job.started_at is not None:
        end = job.finished_at or (now if job.state is JobState.RUNNING else job.updated_at)
        elapsed = max(0.0, (end - job.started_at).total_seconds())
    waiting, waited = None, None
    if job.state is JobState.QUEUED:
        repo_open = any(b.key == f"repo:{job.repo}" and b.state == "open" for b in breakers)
        waiting = blocker or ("breaker open" if repo_open else None)
    elif job.state is JobState.WAITING_INPUT:
        waiting, waited = _needs_you(job, now)
    return StatusRow(
        job=job.id, fr=job.fr_id, title=job.title, state=job.state.value,
        stage=shown_stage(job), iteration=job.iteration,
        elapsed_s=elapsed, cost_usd=round(job.cost_usd, 4), pr=job.pr_url, error=job.error,
        waiting=waiting, waited_s=waited,
    )


def _needs_you(job: Job, now: datetime) -> tuple[str, float | None]:
    """`needs you (2h05m): Q-FR-12.md` for a job waiting for a person, and the seconds."""
    from opus.conversation.waiting import waiting_of

    waiting = waiting_of(job)
    since = waiting.since_at() if waiting is not None else None
    waited = max(0.0, (now - since).total_seconds()) if since is not None else None
    what = "plan approval" if waiting is not None and waiting.kind == "plan" else "answers"
    where = Path(waiting.note).name if waiting is not None and waiting.note else what
    return f"needs you ({duration(waited)}): {where}", waited


def _waiting_rows(items: Iterable[dict[str, Any]], queued: set[str]) -> list[StatusRow]:
    rows: dict[str, StatusRow] = {}
    for item in items:
        fr = str(item.get("fr"))
        if fr in queued or fr in rows:
            continue
        held = item.get("held") or {}
        # A dependency that waits for a person says so: "FR-8 (cancelled)".
        on = [f"{dep} ({held[dep]})" if dep in held else str(dep)
              for dep in item.get("waiting_on", [])]
        reason = str(item.get("reason", ""))
        why = reason if reason.startswith("dependency cycle") else f"waiting on {', '.join(on)}"
        rows[fr] = StatusRow(job=None, fr=fr, title=str(item.get("title", "")), state="planned",
                             stage=None, iteration=0, elapsed_s=None, cost_usd=0.0, pr=None,
                             error=None, waiting=why)
    return list(rows.values())


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class View:
    """How to show paths: relative to the vault (notes) and the project (repos)."""

    vault_root: Path | None = None
    base_dir: Path | None = None
    wide: bool = False

    def path(self, text: str) -> str:
        if self.wide or not text.startswith("/"):
            return text
        for root in (self.vault_root, self.base_dir):
            if root is not None and Path(text).is_relative_to(root):
                return str(Path(text).relative_to(root))
        home = str(Path.home())
        return "~" + text[len(home):] if home != "/" and text.startswith(home + "/") else text

    def fit(self, line: str) -> str:
        line = line.rstrip()
        return line if self.wide or len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def render_status(report: StatusReport, view: View | None = None) -> str:
    """The header (daemons, claiming, spend, breakers), the jobs, the unusable notes."""
    view = view or View()
    lines = [*_header(report, view), "", *_table(report.jobs, view)]
    if report.older_ended:
        lines.append(f"... and {report.older_ended:,} older ended jobs (done, failed, "
                     "cancelled): `opus status --all` lists them")
    if report.problems:
        lines += ["", f"notes opus cannot use ({len(report.problems)}):"]
        lines += [f"  {problem.path}: {problem.reason}" for problem in report.problems]
    return "\n".join(view.fit(line) for line in lines)


def _header(report: StatusReport, view: View) -> list[str]:
    lines = [f"{'daemon':<9} {text}" for text in _daemon_lines(report)]
    lines[1:] = [" " * 10 + line[10:] for line in lines[1:]]
    claiming = "PAUSED: no new work is claimed (`opus resume`)" if report.paused else "on"
    lines.append(f"{'claiming':<9} {claiming}")
    spent = report.spent_today_usd >= report.daily_usd
    over = "  SPENT: claiming waits for tomorrow" if spent else ""
    lines.append(f"{'spend':<9} ${report.spent_today_usd:.2f} today of "
                 f"${report.daily_usd:.2f} (budget.daily_usd){over}")
    for breaker in report.breakers:
        lines.append(f"{'breaker':<9} {_breaker_line(breaker, report.now, view)}")
        error = (breaker.last_error or "").strip().splitlines()
        if error:
            lines.append(f"{'':<9} last error: {error[0]}")
    return lines


def _daemon_lines(report: StatusReport) -> list[str]:
    now = report.now
    running = []
    for d in report.running:
        running.append(
            f"{d.record.host} pid {d.record.pid}, role {d.record.role}, opus {d.record.version}, "
            f"up {duration(_age(d.record.started_at, now))}, beat {duration(d.beat_age_s)} ago"
        )
        quiet = _turn_age(d, now)
        if quiet is not None and report.quiet_turn_s is not None and quiet > report.quiet_turn_s:
            running.append(f"its loop last turned {duration(quiet)} ago though it beats: "
                           "it may be stuck (see its log)")
    if running:
        return running
    lines = ["no daemon running: start one with `opus run`"]
    dead = sorted((d for d in report.daemons if not d.alive), key=lambda d: d.record.beat_at)
    if dead:
        gone = dead[-1]
        lines.append(f"last: {gone.record.host} pid {gone.record.pid}, role {gone.record.role}, "
                     f"beat {duration(gone.beat_age_s)} ago; it did not stop cleanly")
    return lines


def _turn_age(daemon: DaemonView, now: datetime | None) -> float | None:
    turn = daemon.record.info.get("turn_at")
    try:
        return _age(datetime.fromisoformat(str(turn)), now) if turn else None
    except ValueError:
        return None


def _breaker_line(breaker: BreakerView, now: datetime | None, view: View) -> str:
    kind, _, target = breaker.key.partition(":")
    name = f"{kind}:{view.path(target)}" if target else breaker.key
    when = "half-open: the next job is a trial"
    if breaker.state == "open" and breaker.reopens_at:
        reopens = datetime.fromisoformat(breaker.reopens_at)
        left = duration(_age(now, reopens)) if now is not None else "?"
        when = f"open until {reopens:%H:%M:%S %Z}".rstrip() + f" (in {left})"
    return f"{name} {when} after {breaker.failures} failures"


def _table(rows: Sequence[StatusRow], view: View) -> list[str]:
    header = ("JOB", "FR", "STATE", "STAGE", "ROUND", "ELAPSED", "COST", "PR / WHY")
    cells = [header, *(_cells(row, view) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header) - 1)]
    out = []
    for line in cells:
        lead = "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) + "  "
        if view.wide or len(lead) + len(line[-1]) <= WIDTH:
            out.append(lead + line[-1])
        else:  # a long PR path or error gets a line of its own rather than being cut
            out += [lead, " " * (widths[0] + 2) + line[-1]]
    if not rows:
        out.append("no jobs yet: set `status: planned` on a note and run `opus run`")
    return out


def _cells(row: StatusRow, view: View) -> tuple[str, ...]:
    error = (row.error or "").strip().splitlines()[0] if (row.error or "").strip() else ""
    if row.waiting:
        tail = (row.waiting if row.waiting.startswith(("waiting", "needs you"))
                else f"waiting: {row.waiting}")
    elif row.pr:
        # An open PR handed back to a person says why first ("CI still failing …").
        tail = f"{error}: {view.path(row.pr)}" if error else view.path(row.pr)
    else:
        tail = error or activity(row.state, row.stage) or ""
    return (
        "-" if row.job is None else str(row.job), row.fr, row.state, row.stage or "-",
        "-" if row.job is None else str(row.iteration), duration(row.elapsed_s),
        "-" if row.job is None else f"${row.cost_usd:.2f}", tail,
    )


def _age(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def duration(seconds: float | None) -> str:
    """`3m07s`, `2h05m`, `1d03h`; `-` for no time."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
