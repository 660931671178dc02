"""Jobs in every state land in their lane, read from a real SQLite or PostgreSQL registry."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from opus.board.lanes import (
    ENDED_SHOWN,
    LANE_FOR_STATE,
    WINDOW_MAX,
    Lane,
    Window,
    board_from,
    board_snapshot,
    lane_of,
)
from opus.control import set_paused
from opus.delivery.reactions import Reaction, with_reaction
from opus.domain import JobState, Stage, StageRun
from opus.registry import open_store
from opus.registry.reader import open_reader
from opus.status import status_report
from opus.testing.clock import FakeClock
from tests.board.conftest import REPO, Fleet, beat, project_settings
from tests.registry.factory import make_fr


def _lanes(board_dict: dict[str, object]) -> dict[str, list[str]]:
    lanes = board_dict["lanes"]
    assert isinstance(lanes, list)
    return {lane["lane"]: [card["fr"] for card in lane["cards"]] for lane in lanes}


def test_every_state_lands_in_its_lane_through_the_light_reader(fleet: Fleet) -> None:
    board = board_snapshot(open_reader(fleet.url), fleet.settings, fleet.clock.now())

    assert [view.lane for view in board.lanes] == list(Lane)
    assert _lanes(board.as_dict()) == {
        "queued": ["FR-Q2", "FR-Q1", "FR-9"],  # critical first; a planned FR after jobs
        "running": ["FR-R"],
        "needs_you": ["FR-W", "FR-E", "FR-P"],  # the longest waiting first
        "in_review": ["FR-A"],
        "ready": ["FR-Y"],
        "done": ["FR-D"],
        "failed": ["FR-C", "FR-F"],  # the newest first
    }
    running = board.lane(Lane.RUNNING).cards[0]
    assert (running.stage, running.iteration, running.cost_usd, running.elapsed_s) == (
        "code", 2, 0.75, 105.0)
    asked, escalated, plan = board.lane(Lane.NEEDS_YOU).cards
    assert (asked.reason, asked.since_s, asked.state) == (
        "questions: Q-FR-W.md", 60.0, "waiting_input")
    assert (plan.reason, plan.since_s) == ("plan approval", 30.0)
    assert escalated.reason == "escalation: CI still failing on PR 3"
    assert board.lane(Lane.READY).cards[0].reason == "approved and green"
    assert escalated.pr == "https://forge/pr/FR-E" and escalated.since_s == 45.0
    failed = board.card(fleet.jobs["FR-F"].id)
    assert failed is not None and failed.error == "tests failed" and failed.state == "failed"
    assert board.lane(Lane.FAILED).cards[0].state == "cancelled"
    planned = board.lane(Lane.QUEUED).cards[2]
    assert (planned.job, planned.state, planned.reason) == (None, "planned", "waiting on FR-8")
    assert board.daemons_running == 1 and board.paused is False
    assert board.lane(Lane.QUEUED).label == "Queued / Waiting"


def test_the_reader_and_the_registry_draw_the_same_board_and_it_is_json(fleet: Fleet) -> None:
    now = fleet.clock.now()
    from_reader = board_snapshot(open_reader(fleet.url), fleet.settings, now)
    from_store = board_snapshot(fleet.store, fleet.settings, now)
    assert from_reader == from_store
    data = json.loads(json.dumps(from_reader.as_dict()))
    assert data["at"] == now.isoformat() and data["daily_usd"] == 10.0
    card = data["lanes"][1]["cards"][0]
    assert card["lane"] == "running" and card["priority"] == "medium"
    assert card["repo"] == str(REPO) and card["updated_at"].startswith("2026-01-01T00:01")


def test_queued_cards_say_what_holds_them(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = project_settings(tmp_path)
    store = open_store(settings.database_url, clock=clock)
    reader = open_reader(settings.database_url)
    job = store.enqueue(make_fr("FR-1"), REPO)

    def reason() -> str | None:
        return board_snapshot(reader, settings, clock.now()).lane(Lane.QUEUED).cards[0].reason

    assert reason() == "no daemon running"
    beat(store, clock)
    assert reason() is None
    set_paused(store, True)
    assert reason() == "paused"
    set_paused(store, False)
    store.record_stage(StageRun(job_id=job.id, stage=Stage.PLAN, iteration=0, ok=False,
                                output={}, cost_usd=11.0, finished_at=clock.now()))
    assert reason() == "daily budget"
    assert board_snapshot(reader, settings, clock.now()).spent_today_usd == 11.0
    clock.advance(24 * 3600)
    beat(store, clock)
    assert reason() is None
    store.close()


def test_an_empty_or_missing_registry_is_an_empty_board(tmp_path: Path) -> None:
    settings = project_settings(tmp_path)
    board = board_snapshot(open_reader(settings.database_url), settings, FakeClock().now())
    assert all(view.cards == () for view in board.lanes)
    assert not (tmp_path / ".opus").exists(), "looking creates nothing"


def test_every_job_state_has_a_lane() -> None:
    assert {state.value for state in JobState} <= set(LANE_FOR_STATE)


@pytest.mark.parametrize("state", [JobState.DONE, JobState.CANCELLED, JobState.QUEUED])
def test_an_escalation_needs_you_only_while_the_pr_waits(tmp_path: Path, state: JobState) -> None:
    clock = FakeClock()
    store = open_store(project_settings(tmp_path).database_url, clock=clock)
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.transition(job.id, JobState.RUNNING)
    conflict = Reaction("conflict", "escalated", "abc123", "src/a.py")
    job = store.transition(job.id, JobState.AWAITING_REVIEW,
                           spec=with_reaction(job.spec, conflict),
                           error="merge conflict with main on PR 2 — needs you: src/a.py")
    assert lane_of(job) == (Lane.NEEDS_YOU, "escalation: merge conflict with main on PR 2")
    cleared = with_reaction(job.spec, Reaction("conflict", "cleared", "abd", "merged cleanly"))
    assert lane_of(store.update(job.id, spec=cleared)) == (Lane.IN_REVIEW, None)
    store.update(job.id, spec=job.spec)  # escalated again
    clock.advance(timedelta(minutes=5).total_seconds())
    assert lane_of(store.transition(job.id, state))[0] is {
        JobState.DONE: Lane.DONE, JobState.CANCELLED: Lane.FAILED, JobState.QUEUED: Lane.QUEUED,
    }[state]
    store.close()


def test_an_approved_and_green_pr_is_ready_until_that_stops_holding(tmp_path: Path) -> None:
    store = open_store(project_settings(tmp_path).database_url, clock=FakeClock())
    job = store.enqueue(make_fr("FR-1"), REPO)
    store.transition(job.id, JobState.RUNNING)
    job = store.transition(job.id, JobState.AWAITING_REVIEW, stage=Stage.DELIVER)
    assert lane_of(job) == (Lane.IN_REVIEW, None)
    ready = with_reaction(job.spec, Reaction("ready", "ready", "abc123", "approved"))
    job = store.update(job.id, spec=ready)
    assert lane_of(job) == (Lane.READY, "approved and green")
    gone = with_reaction(job.spec, Reaction("ready", "cleared", "def456", "new head"))
    assert lane_of(store.update(job.id, spec=gone)) == (Lane.IN_REVIEW, None)
    store.close()


def _all_cards(fleet: Fleet, lane: Lane) -> list[str]:
    """Every card of `lane`, in the lane's order, from a status report over every job."""
    now = fleet.clock.now()
    jobs = fleet.store.jobs()
    board = board_from(status_report(fleet.store, fleet.settings, now, jobs=jobs), jobs, now)
    return [card.fr for card in board.lane(lane).cards]


def test_an_ended_lane_holds_its_latest_ten_and_its_count_and_pages_reach_every_card(
    long_fleet: Fleet,
) -> None:
    fleet, now = long_fleet, long_fleet.clock.now()
    for reader in (open_reader(fleet.url), fleet.store):
        board = board_snapshot(reader, fleet.settings, now)
        for lane, total in ((Lane.DONE, 25), (Lane.FAILED, 15)):
            view = board.lane(lane)
            everything = _all_cards(fleet, lane)
            assert (view.total, view.offset, view.older, len(everything)) == (
                total, 0, total - ENDED_SHOWN, total)
            assert [card.fr for card in view.cards] == everything[:ENDED_SHOWN]
            paged: list[str] = []
            for offset in range(0, total, 7):  # pages of 7, as far as they go
                window = {lane: Window(offset=offset, limit=7)}
                page = board_snapshot(reader, fleet.settings, now, windows=window).lane(lane)
                assert (page.total, page.offset) == (total, offset)
                paged += [card.fr for card in page.cards]
            assert paged == everything
        assert board.lane(Lane.QUEUED).total == len(board.lane(Lane.QUEUED).cards) == 2
        assert json.loads(json.dumps(board.as_dict()))["lanes"][5]["total"] == 25


def test_a_window_out_of_bounds_is_refused_with_its_range() -> None:
    for offset, limit in ((0, 0), (-1, 10), (0, WINDOW_MAX + 1)):
        with pytest.raises(ValueError, match=f"1 to {WINDOW_MAX} cards"):
            Window(offset=offset, limit=limit)
