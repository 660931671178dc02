"""`opus top` driven by keys (Textual's pilot) against a real SQLite or PostgreSQL registry.

Each key press goes through the app as a person's would; the assertions read the registry
(and the wake file a daemon watches), not the app's own state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from opus.actions import Operator
from opus.board.lanes import Board, Lane, board_snapshot, latest
from opus.board.top import Editor, TopApp
from opus.control import is_paused
from opus.domain import JobState
from opus.errors import OpusError
from opus.registry.reader import open_reader
from opus.testing.clock import FakeClock
from opus.wake import wake_path
from tests.board.conftest import Fleet, project_settings

DEADLINE_S = 20.0
Scenario = Callable[[TopApp, Pilot[int]], Awaitable[None]]


def drive(
    fleet: Fleet, scenario: Scenario, *, refresh_s: float = 1.0, editor: Editor | None = None
) -> TopApp:
    """Run the board headless on the fleet's registry and play `scenario` on it."""
    reader = open_reader(fleet.url)

    def source(ended: int) -> Board:
        return board_snapshot(reader, fleet.settings, fleet.clock.now(), windows=latest(ended))

    operator = Operator(fleet.settings)
    try:
        return play(TopApp(source, operator, refresh_s=refresh_s, editor=editor), scenario)
    finally:
        operator.close()


def play(app: TopApp, scenario: Scenario) -> TopApp:
    """Run `app` headless and play `scenario` on it, within a deadline."""
    async def run() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await scenario(app, pilot)

    asyncio.run(asyncio.wait_for(run(), DEADLINE_S * 2))
    return app


async def select(app: TopApp, pilot: Pilot[int], fr: str) -> None:
    """Move the cursor down to `fr`'s card with the arrow key."""
    for _ in range(40):
        card = app.selected()
        if card is not None and card.fr == fr:
            return
        await pilot.press("down")
    raise AssertionError(f"no card for {fr} on the board")


async def until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition` holds (the board redraws off the event loop)."""
    for _ in range(int(DEADLINE_S / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} within {DEADLINE_S}s")


def lane(app: TopApp, job_id: int) -> Lane | None:
    card = app.board.card(job_id) if app.board is not None else None
    return card.lane if card is not None else None


def message(app: TopApp) -> str:
    return str(app.query_one("#message", Static).render())


def test_r_re_queues_the_selected_failed_job_and_wakes_the_daemon(fleet: Fleet) -> None:
    failed = fleet.jobs["FR-F"]

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        first = app.selected()
        assert first is not None and first.fr == "FR-Q2", "the cursor starts on the first card"
        await select(app, pilot, "FR-F")
        await pilot.press("r")
        await until(pilot, lambda: fleet.store.get(failed.id).state is JobState.QUEUED,
                    "FR-F re-queued")
        await until(pilot, lambda: "FR-F: re-queued" in message(app), "the re-queue said")
        assert wake_path(fleet.settings.state_dir).exists()
        await until(pilot, lambda: lane(app, failed.id) is Lane.QUEUED, "FR-F shown queued")
        await pilot.press("r")  # it is queued now: refused, with the reason
        await until(pilot, lambda: "only failed or cancelled jobs can be retried" in message(app),
                    "the refusal said")

    drive(fleet, scenario)


def test_c_asks_then_y_cancels_and_n_keeps(fleet: Fleet) -> None:
    queued, running = fleet.jobs["FR-Q1"], fleet.jobs["FR-R"]

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await select(app, pilot, "FR-R")
        await pilot.press("c", "n")
        await until(pilot, lambda: message(app) == "kept", "'kept' said")
        assert fleet.store.get(running.id).state is JobState.RUNNING
        await pilot.press("up", "up")  # back up to the queued FR-Q1
        await select(app, pilot, "FR-Q1")
        await pilot.press("c")
        await until(pilot, lambda: "cancel FR-Q1" in message(app), "the question asked")
        assert fleet.store.get(queued.id).state is JobState.QUEUED, "not before the y"
        await pilot.press("y")
        await until(pilot, lambda: fleet.store.get(queued.id).state is JobState.CANCELLED,
                    "FR-Q1 cancelled")
        await until(pilot, lambda: message(app) == f"FR-Q1: cancelled (job {queued.id})",
                    "the cancel said")

    drive(fleet, scenario)


def test_a_answers_only_a_job_that_asks_and_only_where_an_editor_can_run(fleet: Fleet) -> None:
    asking = fleet.jobs["FR-W"]
    edited: list[str] = []

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await pilot.press("a")  # on FR-Q2, the first card
        await pilot.pause()
        assert message(app) == "FR-Q2 is queued; it waits for no answer"
        await select(app, pilot, "FR-W")
        await pilot.press("a")  # a headless app cannot hand the terminal over
        await pilot.pause()
        assert message(app) == ("this terminal cannot hand over to an editor: "
                                "`opus answer FR-W`")
        assert fleet.store.get(asking.id).state is JobState.WAITING_INPUT and edited == []

    drive(fleet, scenario, editor=lambda text: edited.append(text) or text)


def test_p_pauses_and_resumes_claiming(fleet: Fleet) -> None:
    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await pilot.press("p")
        await pilot.pause()
        assert is_paused(fleet.store)
        await until(pilot, lambda: "PAUSED" in str(app.query_one("#summary", Static).render()),
                    "the summary says PAUSED")
        await pilot.press("p")
        await pilot.pause()
        assert not is_paused(fleet.store)
        assert message(app) == "resumed: claiming new work"

    drive(fleet, scenario)


def test_the_board_follows_the_registry_without_a_key_and_q_quits(fleet: Fleet) -> None:
    queued = fleet.jobs["FR-Q2"]

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        fleet.store.transition(queued.id, JobState.RUNNING)  # as a daemon claiming it
        await until(pilot, lambda: lane(app, queued.id) is Lane.RUNNING, "FR-Q2 shown running")
        await pilot.press("q")

    app = drive(fleet, scenario, refresh_s=0.2)
    assert app.return_code == 0 and app.return_value == 0


def test_an_unreachable_registry_is_said_on_the_board_and_q_still_quits(tmp_path: Path) -> None:
    settings = project_settings(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none?"
                                          "connect_timeout=2")
    reader = open_reader(settings.database_url)
    reads = 0

    def source(_ended: int) -> Board:
        nonlocal reads
        reads += 1
        return board_snapshot(reader, settings, FakeClock().now())

    app = TopApp(source, Operator(settings), refresh_s=0.1)

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: "cannot read the registry" in message(app),
                    "the board says it cannot read the registry")
        assert "is the server running?" in message(app)
        await pilot.press("r")  # nothing selected: refused, not a crash
        await pilot.pause()
        assert message(app) == "cannot retry: no job is selected"
        seen = reads
        await until(pilot, lambda: reads >= seen + 3, "three more reads")
        # The same failure again does not wipe out the answer to the key just pressed.
        assert message(app) == "cannot retry: no job is selected"
        await pilot.press("q")

    assert play(app, scenario).return_value == 0


def test_a_registry_readable_again_is_said_and_the_board_drawn(fleet: Fleet) -> None:
    reader = open_reader(fleet.url)
    down = True

    def source(ended: int) -> Board:
        if down:
            raise OpusError("cannot reach postgresql at 127.0.0.1:5432; is the server running?")
        return board_snapshot(reader, fleet.settings, fleet.clock.now(), windows=latest(ended))

    app = TopApp(source, Operator(fleet.settings), refresh_s=0.1)

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        nonlocal down
        await until(pilot, lambda: "cannot read the registry" in message(app), "the error said")
        down = False
        await until(pilot, lambda: app.board is not None, "the board drawn")
        assert message(app) == "the registry can be read again"
        await pilot.press("q")

    assert play(app, scenario).return_value == 0


def _lines(app: TopApp) -> list[str]:
    cards = app.query_one("#cards", OptionList)
    return [str(option.prompt) for option in cards.options]


def test_m_shows_more_of_the_done_and_failed_lanes(long_fleet: Fleet) -> None:
    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: app.board is not None, "the board drawn")
        assert app.board is not None
        assert len(app.board.lane(Lane.DONE).cards) == 10
        assert "Done (25)" in _lines(app)
        assert "  … and 15 more (m shows 50 more)" in _lines(app)  # Done
        assert "  … and 5 more (m shows 50 more)" in _lines(app)  # Failed
        await pilot.press("m")
        await until(pilot, lambda: app.board is not None
                    and len(app.board.lane(Lane.DONE).cards) == 25, "every Done card shown")
        assert not [line for line in _lines(app) if "more (" in line]
        assert message(app) == "showing the latest 60 done and failed jobs"
        assert len(app.board.lane(Lane.FAILED).cards) == 15

    drive(long_fleet, scenario)
