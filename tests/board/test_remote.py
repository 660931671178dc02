"""`opus top --url`: the board of a real `opus dashboard` (uvicorn on loopback) over the
fleet's registry, read through the JSON API, with keys that post to its actions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from opus.board.lanes import ENDED_SHOWN, Lane, board_snapshot, latest
from opus.board.remote import RemoteBoard
from opus.board.text import render_board
from opus.board.top import TopApp
from opus.conversation.waiting import conversation_of
from opus.dashboard.server import DashboardServer, build_context
from opus.domain import JobState
from opus.errors import StoreError, UsageError
from tests.board.conftest import Fleet
from tests.board.test_top import message, play, select
from tests.dashboard.helpers import LOOPBACK, serving
from tests.e2e_cli.helpers import clean_env, run_opus

TOKEN = "a-token-for-the-remote-board-tests"


@pytest.fixture
def served(fleet: Fleet) -> Iterator[DashboardServer]:
    context = build_context(fleet.settings, {"OPUS_DASHBOARD_TOKEN": TOKEN}, listen=LOOPBACK,
                            clock=fleet.clock)
    with serving(context) as server:
        yield server


def test_the_api_gives_back_the_board_the_registry_gives(
    fleet: Fleet, served: DashboardServer
) -> None:
    local = board_snapshot(fleet.store, fleet.settings, fleet.clock.now())
    remote = RemoteBoard(served.url, None).board()  # reading needs no token on loopback
    assert remote.lanes == local.lanes
    assert (remote.at, remote.paused, remote.spent_today_usd, remote.daily_usd) == (
        local.at, local.paused, local.spent_today_usd, local.daily_usd)
    assert remote.daemons_running == local.daemons_running == 1
    assert render_board(remote) == render_board(local)


def test_keys_act_through_the_api_with_the_token_and_are_refused_without(
    fleet: Fleet, served: DashboardServer
) -> None:
    failed = fleet.jobs["FR-F"]

    async def refused(app: TopApp, pilot: Pilot[int]) -> None:
        await select(app, pilot, "FR-F")
        await pilot.press("r")
        await pilot.pause()
        assert "needs the dashboard token" in message(app)
        assert "OPUS_DASHBOARD_TOKEN" in message(app)
        assert fleet.store.get(failed.id).state is JobState.FAILED

    async def retried(app: TopApp, pilot: Pilot[int]) -> None:
        await select(app, pilot, "FR-F")
        await pilot.press("r")
        await pilot.pause()
        assert fleet.store.get(failed.id).state is JobState.QUEUED
        assert "FR-F: re-queued" in message(app)

    anonymous = RemoteBoard(served.url, None)
    play(TopApp(anonymous.board, anonymous), refused)
    holder = RemoteBoard(served.url, TOKEN)
    play(TopApp(holder.board, holder), retried)


def test_a_board_that_is_not_there_says_where_it_looked() -> None:
    where = r"cannot read the board at http://127\.0\.0\.1:9: .*refused"
    with pytest.raises(StoreError, match=where):
        RemoteBoard("http://127.0.0.1:9/", None, timeout_s=5).board()


def test_opus_top_url_prints_the_dashboards_board(
    fleet: Fleet, served: DashboardServer
) -> None:
    result = run_opus("top", "--url", served.url, cwd=fleet.settings.base_dir,
                      env=clean_env(fleet.settings.base_dir))
    assert result.code == 0, result.err
    local = board_snapshot(fleet.store, fleet.settings, fleet.clock.now())
    assert result.out.splitlines()[2:] == render_board(local).splitlines()[2:]


def _answering(edited: list[str], *, answer: str) -> Callable[[str], str]:
    """An editor that fills every `**Answer:**` line, keeping what it was shown."""
    def edit(text: str) -> str:
        edited.append(text)
        return re.sub(r"(?m)^\*\*Answer:\*\* *$", f"**Answer:** {answer}", text)
    return edit


def test_a_answers_through_the_api_what_the_job_page_asks(
    fleet: Fleet, served: DashboardServer
) -> None:
    asking = fleet.jobs["FR-W"]
    shown: list[str] = []
    anonymous, holder = RemoteBoard(served.url, None), RemoteBoard(served.url, TOKEN)

    with pytest.raises(UsageError, match="needs the dashboard token"):
        anonymous.answer(str(asking.id), None, _answering(shown, answer="redis"))
    assert fleet.store.get(asking.id).state is JobState.WAITING_INPUT
    with pytest.raises(UsageError, match="FR-Q2 is queued; it waits for no answer"):
        holder.answer(str(fleet.jobs["FR-Q2"].id), None, _answering(shown, answer="x"))

    said = holder.answer(str(asking.id), None, _answering(shown, answer="memory, for now"))

    assert "## 1. Which store?" in shown[-1] and "Recommendation: memory" in shown[-1]
    assert said == f"FR-W: queued (job {asking.id}); it resumes where it asked"
    answered = fleet.store.get(asking.id)
    assert answered.state is JobState.QUEUED
    assert [a.answers for a in conversation_of(answered)] == [("memory, for now",)]


def test_a_decides_a_plan_through_the_api_and_a_bad_decision_is_refused(
    fleet: Fleet, served: DashboardServer
) -> None:
    plan = fleet.jobs["FR-P"]
    holder = RemoteBoard(served.url, TOKEN)

    def deciding(decision: str) -> Callable[[str], str]:
        def edit(text: str) -> str:
            assert "Set `decision:` above" in text
            return text.replace("decision:\n", f"decision: {decision}\n") + "Use a cache.\n"
        return edit

    with pytest.raises(UsageError, match="`decision: maybe` is not one of"):
        holder.answer(str(plan.id), None, deciding("maybe"))
    assert fleet.store.get(plan.id).state is JobState.WAITING_INPUT

    holder.answer(str(plan.id), None, deciding("changes"))

    decided = fleet.store.get(plan.id)
    assert decided.state is JobState.QUEUED
    assert decided.spec["plan_review"]["decision"] == "changes"
    assert decided.spec["plan_review"]["comments"] == "Use a cache."


def test_the_remote_board_reads_as_many_ended_cards_as_asked(
    long_fleet: Fleet, served: DashboardServer
) -> None:
    now = long_fleet.clock.now()
    for ended in (ENDED_SHOWN, 20):
        local = board_snapshot(long_fleet.store, long_fleet.settings, now, windows=latest(ended))
        remote = RemoteBoard(served.url, None).board(ended)
        assert remote.lanes == local.lanes
        assert (remote.lane(Lane.DONE).total, len(remote.lane(Lane.DONE).cards)) == (25, ended)
