"""`opus top --url`: the board of a real `opus dashboard` (uvicorn on loopback) over the
fleet's registry, read through the JSON API, with keys that post to its actions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from opus.board.lanes import board_snapshot
from opus.board.remote import RemoteBoard
from opus.board.text import render_board
from opus.board.top import TopApp
from opus.dashboard.server import DashboardServer, build_context
from opus.domain import JobState
from opus.errors import StoreError
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
