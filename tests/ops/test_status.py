"""`opus status` as a report: daemons alive or dead, why each job waits, what fits in 100 columns.

The registry is real (SQLite in memory); daemon records are the rows a daemon writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opus.board.lanes import Lane, board_snapshot
from opus.config import BudgetConfig, DaemonConfig, Settings, VaultConfig
from opus.control import set_paused
from opus.daemon.breaker import OpenCircuit
from opus.domain import DaemonRecord, FRStatus, JobState, Stage, StageRun
from opus.presence import Presence, daemon_info
from opus.registry import Registry
from opus.scheduling import Blocked, schedule
from opus.status import WIDTH, View, render_status, status_report
from opus.testing.clock import FakeClock
from opus.testing.store import memory_store
from opus.vault.problems import NoteProblem, write_problems
from tests.registry.factory import make_fr

HOST = socket.gethostname()
REPO = Path("/srv/repos/api")
OTHER_REPO = Path("/srv/repos/web")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Registry:
    return memory_store(clock)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        vault=VaultConfig(path=tmp_path / "vault"),
        daemon=DaemonConfig(state_dir=tmp_path / ".opus"),
        budget=BudgetConfig(daily_usd=10),
        base_dir=tmp_path,
    )


def _daemon(
    clock: FakeClock, *, pid: int | None = None, host: str = HOST, age_s: float = 3,
    breakers: list[OpenCircuit] | None = None, blocked: list[Blocked] | None = None,
) -> DaemonRecord:
    pid = os.getpid() if pid is None else pid
    return DaemonRecord(
        id=f"{host}:{pid}:abc123", host=host, pid=pid, role="all", version="0.1.0",
        started_at=clock.now() - timedelta(hours=2), beat_at=clock.now() - timedelta(seconds=age_s),
        beat_every_s=20.0, info=daemon_info(breakers or [], blocked or [], clock.now()),
    )


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid


def _waiting(store: Registry, settings: Settings, clock: FakeClock) -> dict[str, str | None]:
    report = status_report(store, settings, clock.now())
    return {row.fr: row.waiting for row in report.jobs}


def test_without_a_daemon_record_nothing_runs_and_queued_jobs_say_so(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    store.enqueue(make_fr("FR-1"), REPO)
    report = status_report(store, settings, clock.now())
    assert report.running == [] and report.as_dict()["daemon_running"] is False
    assert report.jobs[0].waiting == "no daemon running"
    text = render_status(report)
    assert text.splitlines()[0].startswith("daemon    no daemon running")
    assert "waiting: no daemon running" in text


def test_a_daemon_killed_without_stopping_is_not_running(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    # Its record is fresh (it beat a second ago), but its process is gone from this host.
    store.beat_daemon(_daemon(clock, pid=_dead_pid(), age_s=1))
    report = status_report(store, settings, clock.now())
    assert [d.alive for d in report.daemons] == [False]
    first, second = render_status(report).splitlines()[:2]
    assert first == "daemon    no daemon running: start one with `opus run`"
    assert "did not stop cleanly" in second and "last: " in second


def test_a_live_daemon_shows_host_pid_role_version_uptime_and_beat_age(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    store.beat_daemon(_daemon(clock, age_s=3))
    report = status_report(store, settings, clock.now())
    (daemon,) = report.running
    assert (daemon.record.host, daemon.record.pid, daemon.record.role, daemon.beat_age_s) == (
        HOST, os.getpid(), "all", 3.0)
    first = render_status(report).splitlines()[0]
    assert first == (f"daemon    {HOST} pid {os.getpid()}, role all, opus 0.1.0, up 2h00m, "
                     "beat 0m03s ago")[:WIDTH]


def test_a_remote_daemon_runs_until_its_beats_stop(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    # Another host's pid cannot be checked from here: the beat's age decides.
    store.beat_daemon(_daemon(clock, host="elsewhere.example", pid=1, age_s=30))
    assert [d.alive for d in status_report(store, settings, clock.now()).daemons] == [True]
    clock.advance(60)
    assert [d.alive for d in status_report(store, settings, clock.now()).daemons] == [False]


def test_queued_jobs_wait_for_pause_then_budget_then_breakers(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    api = store.enqueue(make_fr("FR-1"), REPO)
    store.enqueue(make_fr("FR-2"), OTHER_REPO)
    store.beat_daemon(_daemon(clock))
    assert _waiting(store, settings, clock) == {"FR-1": None, "FR-2": None}

    set_paused(store, True)
    assert _waiting(store, settings, clock) == {"FR-1": "paused", "FR-2": "paused"}
    set_paused(store, False)

    store.record_stage(StageRun(job_id=api.id, stage=Stage.PLAN, iteration=0, ok=True,
                                output={}, cost_usd=12.5, finished_at=clock.now()))
    assert _waiting(store, settings, clock) == {"FR-1": "daily budget", "FR-2": "daily budget"}
    report = status_report(store, settings, clock.now())
    assert "$12.50 today of $10.00 (budget.daily_usd)  SPENT" in render_status(report)
    clock.advance(24 * 3600)  # a new day: yesterday's spend no longer counts

    repo_open = OpenCircuit(f"repo:{REPO}", "open", 3, 300, "git push: remote hung up")
    store.beat_daemon(_daemon(clock, breakers=[repo_open]))
    assert _waiting(store, settings, clock) == {"FR-1": "breaker open", "FR-2": None}
    engine_open = OpenCircuit("engine:anthropic", "open", 3, 300, "529 overloaded")
    store.beat_daemon(_daemon(clock, breakers=[engine_open]))
    assert _waiting(store, settings, clock) == {"FR-1": "breaker open", "FR-2": "breaker open"}
    database_open = OpenCircuit("database:postgresql db:5432/opus", "open", 3, 300,
                                "the registry database keeps aborting opus's transactions")
    store.beat_daemon(_daemon(clock, breakers=[database_open]))
    assert _waiting(store, settings, clock) == {"FR-1": "breaker open", "FR-2": "breaker open"}
    store.transition(api.id, JobState.RUNNING)
    assert _waiting(store, settings, clock)["FR-1"] is None, "only queued jobs wait"


def test_open_breakers_show_their_reopen_time_and_last_error(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    circuit = OpenCircuit(f"repo:{REPO}", "open", 3, 240, "git push failed: remote hung up\nmore")
    store.beat_daemon(_daemon(clock, breakers=[circuit]))
    report = status_report(store, settings, clock.now())
    (breaker,) = report.breakers
    assert breaker.reopens_at == (clock.now() + timedelta(seconds=240)).isoformat()
    lines = render_status(report).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("breaker"))
    assert lines[at] == f"breaker   repo:{REPO} open until 00:04:00 UTC (in 4m00s) after 3 failures"
    assert lines[at + 1] == "          last error: git push failed: remote hung up"


def test_planned_frs_waiting_on_dependencies_are_listed(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    blocked = Blocked(make_fr("FR-9", depends_on=("FR-8",)), ("FR-8",), "waits for FR-8 (planned)")
    store.beat_daemon(_daemon(clock, blocked=[blocked]))
    report = status_report(store, settings, clock.now())
    (row,) = report.jobs
    assert (row.job, row.fr, row.state, row.waiting) == (None, "FR-9", "planned", "waiting on FR-8")
    assert any(line.startswith("-    FR-9") and line.endswith("waiting on FR-8")
               for line in render_status(report).splitlines())
    # Only a live daemon's view counts: a dead one's list is stale.
    store.forget_daemon(f"{HOST}:{os.getpid()}:abc123")
    store.beat_daemon(_daemon(clock, blocked=[blocked], pid=_dead_pid()))
    assert status_report(store, settings, clock.now()).jobs == []


def test_a_dependency_that_waits_for_a_person_is_named_with_its_status(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    # FR-62 was cancelled: FR-63 waits on it forever unless someone retries it or drops
    # the dependency, so the row says which; FR-61 is on its way and says nothing more.
    frs = [make_fr("FR-63", depends_on=("FR-62",)), make_fr("FR-64", depends_on=("FR-61",))]
    statuses = {"FR-62": FRStatus.CANCELLED, "FR-61": FRStatus.IN_PROGRESS}
    store.beat_daemon(_daemon(clock, blocked=list(schedule(frs, statuses).blocked)))
    report = status_report(store, settings, clock.now())
    assert {row.fr: row.waiting for row in report.jobs} == {
        "FR-63": "waiting on FR-62 (cancelled)", "FR-64": "waiting on FR-61"}
    assert any(line.endswith("waiting on FR-62 (cancelled)")
               for line in render_status(report).splitlines())


def test_long_paths_and_errors_fit_in_100_columns_and_wide_shows_them_whole(
    store: Registry, settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    review = settings.vault_path / "10_features" / "05_review"
    pr = review / ("PR-FR-1-" + "long-title-" * 5 + ".md")
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.transition(job.id, JobState.RUNNING)
    store.transition(job.id, JobState.AWAITING_REVIEW, pr_url=str(pr))
    failed = store.enqueue(make_fr("FR-2"), REPO)
    store.transition(failed.id, JobState.FAILED, error="tests failed: " + "x" * 200)
    write_problems(settings.state_dir, [NoteProblem("10_features/03_planned/bad.md",
                                                    "missing `title:`; " + "y" * 150)])
    store.beat_daemon(_daemon(clock, breakers=[
        OpenCircuit(f"repo:{tmp_path}/repos/api", "open", 3, 60, "z" * 300)]))
    report = status_report(store, settings, clock.now())

    text = render_status(report, View(vault_root=settings.vault_path, base_dir=tmp_path))
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    relative = str(pr.relative_to(settings.vault_path))
    assert relative in text and str(pr) not in text, "PR notes are shown vault-relative"
    assert "breaker   repo:repos/api open" in text
    assert "notes opus cannot use (1):" in text and "  10_features/03_planned/bad.md: " in text

    wide = render_status(report, View(vault_root=settings.vault_path, wide=True))
    assert str(pr) in wide and "x" * 200 in wide and "y" * 150 in wide and "z" * 300 in wide


def test_json_carries_daemons_pause_breakers_budget_jobs_and_problems(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    store.enqueue(make_fr("FR-1"), REPO)
    blocked = Blocked(make_fr("FR-9"), ("FR-8",), "waits for FR-8 (planned)")
    circuit = OpenCircuit("engine:anthropic", "open", 3, 60, "529")
    store.beat_daemon(_daemon(clock, breakers=[circuit], blocked=[blocked]))
    set_paused(store, True)
    write_problems(settings.state_dir, [NoteProblem("10_features/x.md", "bad YAML")])
    data = json.loads(json.dumps(status_report(store, settings, clock.now()).as_dict(),
                                 default=str))
    assert data["daemon_running"] is True and data["paused"] is True
    assert data["daemons"][0]["pid"] == os.getpid() and data["daemons"][0]["alive"] is True
    assert data["breakers"][0]["key"] == "engine:anthropic"
    assert data["breakers"][0]["last_error"] == "529"
    assert data["budget"] == {"spent_today_usd": 0.0, "daily_usd": 10.0}
    assert [(j["fr"], j["waiting"]) for j in data["jobs"]] == [("FR-1", "paused"),
                                                               ("FR-9", "waiting on FR-8")]
    assert data["problems"] == [{"path": "10_features/x.md", "reason": "bad YAML"}]


def test_a_daemon_keeps_its_record_fresh_and_removes_it_when_it_stops(tmp_path: Path) -> None:
    from opus.clock import SystemClock

    store = memory_store()
    clock = SystemClock()
    dead = DaemonRecord(id=f"{HOST}:{_dead_pid()}:old000", host=HOST, pid=_dead_pid(),
                        role="all", version="0.0.1", started_at=clock.now(),
                        beat_at=clock.now(), beat_every_s=20)
    store.beat_daemon(dead)
    presence = Presence(store, clock, daemon_id=f"{HOST}:{os.getpid()}:new000", role="worker",
                        every_s=0.05)
    presence.start(daemon_info([], [], clock.now()))
    try:
        (record,) = store.daemons()
        assert record.id.endswith(":new000"), "a dead daemon of this host is cleaned up"
        first_beat = record.beat_at
        deadline = time.monotonic() + 10
        while store.daemons()[0].beat_at == first_beat and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.daemons()[0].beat_at > first_beat, "the heartbeat renews the record"
        circuit = OpenCircuit("engine:command", "open", 3, 60, "exit 1")
        presence.update(daemon_info([circuit], [], clock.now()))
        assert store.daemons()[0].info["breakers"][0]["last_error"] == "exit 1"
    finally:
        presence.stop()
    assert store.daemons() == []


def test_status_reads_every_beat_time_as_aware_utc(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    store.beat_daemon(_daemon(clock))
    (daemon,) = status_report(store, settings, clock.now()).daemons
    beat_at = daemon.record.beat_at
    assert isinstance(beat_at, datetime) and beat_at.tzinfo is not None
    assert daemon.as_dict()["last_turn_at"] is None and "info" not in daemon.as_dict()


def test_a_live_daemon_whose_loop_stopped_turning_is_shown_as_possibly_stuck(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    # The heartbeat thread goes on; the loop (poll_idle_s 300: it turns at least every 5 m)
    # last turned 20 minutes ago.
    record = _daemon(clock)
    stuck = dataclasses.replace(
        record, info={**record.info, "turn_at": (clock.now() - timedelta(minutes=20)).isoformat()}
    )
    store.beat_daemon(stuck)
    lines = render_status(status_report(store, settings, clock.now())).splitlines()
    assert lines[1] == ("          its loop last turned 20m00s ago though it beats: it may be "
                        "stuck (see its log)")
    fresh = dataclasses.replace(
        record, info={**record.info, "turn_at": (clock.now() - timedelta(minutes=4)).isoformat()}
    )
    store.beat_daemon(fresh)
    assert render_status(status_report(store, settings, clock.now())).splitlines()[1].startswith(
        "claiming")


def test_a_running_job_before_its_first_stage_says_it_is_preparing(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    # Worktree, setup (a venv and `pip install -e .`) and the baseline tests can take
    # minutes before the plan stage starts; STAGE is "-" then, so the row says why.
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.beat_daemon(_daemon(clock))
    store.transition(job.id, JobState.RUNNING)

    report = status_report(store, settings, clock.now())
    [row] = [line for line in render_status(report).splitlines() if " FR-1 " in line]
    assert row.split()[3:4] == ["-"] and row.endswith("preparing: worktree, setup, baseline tests")
    assert report.as_dict()["jobs"][0]["waiting"] is None
    [card] = board_snapshot(store, settings, clock.now()).lane(Lane.RUNNING).cards
    assert card.reason == "preparing: worktree, setup, baseline tests"

    store.update(job.id, stage=Stage.PLAN)
    report = status_report(store, settings, clock.now())
    assert "preparing" not in render_status(report)
    [card] = board_snapshot(store, settings, clock.now()).lane(Lane.RUNNING).cards
    assert card.reason is None


def test_every_open_job_and_the_latest_ended_ones_are_listed_and_all_lists_the_rest(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    ended: list[int] = []
    for n in range(1, 31):  # a history: 30 ended jobs, the newest last
        job = store.enqueue(make_fr(f"FR-{n}"), REPO)
        store.transition(job.id, JobState.RUNNING)
        if n % 3:
            store.transition(job.id, JobState.AWAITING_REVIEW, pr_url=f"https://pr/{n}")
            store.transition(job.id, JobState.DONE)
        else:
            store.transition(job.id, JobState.FAILED, error="tests failed")
        ended.append(job.id)
        clock.advance(60)
    old_open = store.enqueue(make_fr("FR-99"), REPO)  # queued for ages: never left out
    open_ids = {old_open.id}
    review = store.enqueue(make_fr("FR-100"), REPO)
    store.transition(review.id, JobState.RUNNING)
    store.transition(review.id, JobState.AWAITING_REVIEW, pr_url="https://pr/100")
    open_ids.add(review.id)

    report = status_report(store, settings, clock.now())

    listed = [row.job for row in report.jobs]
    assert set(listed) == open_ids | set(ended[-20:])
    assert listed == sorted(listed, reverse=True)
    assert report.older_ended == 10 and report.as_dict()["older_ended_jobs"] == 10
    assert render_status(report).splitlines()[-1] == (
        "... and 10 older ended jobs (done, failed, cancelled): `opus status --all` lists them")

    everything = status_report(store, settings, clock.now(), ended_shown=None)
    assert {row.job for row in everything.jobs} == open_ids | set(ended)
    assert everything.older_ended == 0 and "older ended" not in render_status(everything)


def test_a_job_with_a_pr_and_an_error_says_the_error_then_the_pr(
    store: Registry, settings: Settings, clock: FakeClock
) -> None:
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.transition(job.id, JobState.RUNNING)
    store.transition(job.id, JobState.AWAITING_REVIEW, pr_url="https://forge/pr/7")
    store.transition(job.id, JobState.CANCELLED, error="the PR was closed without merge")
    text = render_status(status_report(store, settings, clock.now()))
    assert "the PR was closed without merge: https://forge/pr/7" in text
