"""`opus top`: the board in a terminal, redrawn every second, with keys to act on a job.

A Textual app (see designs/top.md for why Textual): the summary line, the column heads,
and one list holding every lane's title and cards. Arrow keys (or j/k) move between
cards; lane titles are skipped. `r` retries the selected job, `c` cancels it (after a
`y`), `p` pauses or resumes claiming, `a` opens the questions (or the plan) of a job
that waits for a person in `$EDITOR` and answers with what is saved, `m` shows more of
the Done and Failed lanes (each holds its ten latest cards at first), `q` quits. The
actions are the CLI's own (`opus.actions.Operator`), so a running daemon acts on them
within a second.

The registry is read off the event loop (a thread per refresh, never two at once), so a
slow database never freezes the keys. Nothing here needs a mouse, colours or a wide
terminal; it runs wherever an SSH session gives a terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from opus.board.lanes import ENDED_SHOWN, WINDOW_MAX, Board, Card
from opus.board.text import board_lines, card_key, summary
from opus.errors import OpusError
from opus.status import View

REFRESH_S = 1.0
MORE_STEP = 50
"""Cards `m` adds to the Done and Failed lanes (up to `WINDOW_MAX` each)."""
Source = Callable[[int], Board]
"""Reads the board with the latest N cards of each ended lane."""
Editor = Callable[[str], str]
"""Opens a text for the person to edit and returns what they saved (`$EDITOR`)."""


def _prompt(text: str) -> Text:
    return Text(text, no_wrap=True, overflow="ellipsis")


class Actions(Protocol):
    """What the keys do (`opus.actions.Operator`); each returns what to tell the person."""

    def retry(self, fr: str) -> str: ...

    def cancel(self, fr: str) -> str: ...

    def set_paused(self, paused: bool) -> str: ...

    def answer(self, fr: str, texts: Sequence[str] | None, edit: Editor) -> str: ...


class TopApp(App[int]):
    """The live board; `run()` returns 0 when the person quits."""

    TITLE = "opus top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #summary { height: 1; padding: 0 1; background: $boost; }
    #heads { height: 1; color: $text-muted; }
    #cards { height: 1fr; border: none; padding: 0; }
    #cards > .option-list--option-disabled { text-style: bold; color: $text; }
    #message { height: 1; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("c", "cancel", "Cancel"),
        Binding("p", "pause", "Pause/resume"),
        Binding("a", "answer", "Answer"),
        Binding("m", "more", "More done/failed"),
        Binding("q", "quit_board", "Quit"),
        Binding("ctrl+c", "quit_board", "Quit", show=False, priority=True),
        Binding("y", "confirm", "Yes", show=False),
        Binding("n,escape", "dismiss", "No", show=False),
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
    ]

    def __init__(
        self, source: Source, actions: Actions, *, view: View | None = None,
        refresh_s: float = REFRESH_S, editor: Editor | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.actions = actions
        self.editor = editor
        """Where `a` lets the person write answers; None: `a` says to use `opus answer`."""
        self.view = view or View()
        self.refresh_s = refresh_s
        self.ended = ENDED_SHOWN
        """How many of the latest Done and Failed cards to show (`m` adds more)."""
        self.board: Board | None = None
        self.pending: Card | None = None
        """The card `c` asked about; `y` cancels it."""
        self._loading = False
        self._reads = 0
        self._drawn = 0
        self._read_error: str | None = None
        """What the message line says of the registry while it cannot be read."""

    def compose(self) -> ComposeResult:
        yield Static("reading the registry…", id="summary")
        yield Static("", id="heads")
        yield OptionList(id="cards")
        yield Static("", id="message")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#cards", OptionList).focus()
        self.set_interval(self.refresh_s, self.reload)
        await self.reload()

    # ------------------------------------------------------------------ drawing

    async def reload(self, *, fresh: bool = False) -> None:
        """Read the board (in a thread) and redraw it. A timed read is skipped while one
        is still going; a `fresh` one (after an action) is not, and an older read that
        ends after a newer one is dropped."""
        if self._loading and not fresh:
            return
        self._reads += 1
        ticket = self._reads
        self._loading = True
        try:
            board = await asyncio.to_thread(self.source, self.ended)
        except OpusError as exc:
            # Said once, not at every timed read: it would wipe out, within a second, the
            # answer to what the operator just pressed.
            error = f"cannot read the registry: {exc}"
            if error != self._read_error:
                self._read_error = error
                self.say(error)
            return
        finally:
            self._loading = False
        if self._read_error is not None:
            if self.said() == self._read_error:
                self.say("the registry can be read again")
            self._read_error = None
        if ticket > self._drawn:
            self._drawn = ticket
            self.show(board)

    def show(self, board: Board) -> None:
        self.board = board
        more = (f"m shows {MORE_STEP} more" if self.ended < WINDOW_MAX
                else "`opus status` lists them all")
        heads, lines = board_lines(board, self.view, more=more)
        self.query_one("#summary", Static).update(Text(summary(board)))
        self.query_one("#heads", Static).update(Text(heads.text, no_wrap=True))
        cards = self.query_one("#cards", OptionList)
        ids = [line.key for line in lines]
        if ids == [option.id for option in cards.options]:
            # The same cards in the same places: rewrite only the lines that changed
            # (a 1,000-card board would otherwise be rebuilt every second).
            for index, (option, line) in enumerate(zip(cards.options, lines, strict=True)):
                if str(option.prompt) != line.text:
                    cards.replace_option_prompt_at_index(index, _prompt(line.text))
            return
        selected = self.selected_key()
        cards.set_options(Option(_prompt(line.text), id=line.key, disabled=line.key is None)
                          for line in lines)
        if selected is not None and selected in ids:
            cards.highlighted = ids.index(selected)
        elif any(ids):  # the first card (lane titles have no key)
            cards.highlighted = next(i for i, key in enumerate(ids) if key)

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(Text(text))

    def said(self) -> str:
        """What the message line shows now."""
        return str(self.query_one("#message", Static).render())

    def selected_key(self) -> str | None:
        option = self.query_one("#cards", OptionList).highlighted_option
        return option.id if option is not None else None

    def selected(self) -> Card | None:
        """The card under the cursor, as of the last board read."""
        key = self.selected_key()
        if key is None or self.board is None:
            return None
        return next((card for lane in self.board.lanes for card in lane.cards
                     if card_key(card) == key), None)

    # ------------------------------------------------------------------ keys

    def action_cursor(self, direction: str) -> None:
        cards = self.query_one("#cards", OptionList)
        (cards.action_cursor_down if direction == "down" else cards.action_cursor_up)()

    async def action_retry(self) -> None:
        card = self._job_card("retry")
        if card is not None:
            await self._act(lambda: self.actions.retry(str(card.job)))

    def action_cancel(self) -> None:
        card = self._job_card("cancel")
        if card is not None:
            self.pending = card
            self.say(f"cancel {card.fr} (job {card.job})? y: cancel it, n: keep it")

    async def action_confirm(self) -> None:
        card, self.pending = self.pending, None
        if card is not None:
            await self._act(lambda: self.actions.cancel(str(card.job)))

    def action_dismiss(self) -> None:
        if self.pending is not None:
            self.pending = None
            self.say("kept")

    async def action_pause(self) -> None:
        paused = self.board.paused if self.board is not None else False
        await self._act(lambda: self.actions.set_paused(not paused))

    async def action_answer(self) -> None:
        card = self._job_card("answer")
        if card is None:
            return
        if card.state != "waiting_input":
            self.say(f"{card.fr} is {card.state}; it waits for no answer")
            return
        editor = self.editor
        if editor is None:
            self.say(f"answer with `opus answer {card.fr}`")
            return

        def answer() -> str:
            try:
                with self.suspend():  # the editor gets the whole terminal
                    return self.actions.answer(str(card.job), None, editor)
            except SuspendNotSupported:
                return f"this terminal cannot hand over to an editor: `opus answer {card.fr}`"

        await self._act(answer)

    async def action_more(self) -> None:
        """Show more of the Done and Failed lanes (the next older cards)."""
        if self.ended >= WINDOW_MAX:
            self.say(f"showing the latest {WINDOW_MAX} of each; `opus status` lists them all")
            return
        self.ended = min(WINDOW_MAX, self.ended + MORE_STEP)
        self.say(f"showing the latest {self.ended} done and failed jobs")
        await self.reload(fresh=True)

    def action_quit_board(self) -> None:
        self.exit(0)

    def _job_card(self, verb: str) -> Card | None:
        card = self.selected()
        if card is None or card.job is None:
            what = f"{card.fr} has no job yet" if card is not None else "no job is selected"
            self.say(f"cannot {verb}: {what}")
            return None
        return card

    async def _act(self, action: Callable[[], str]) -> None:
        """Run an action; say what happened or why not, then redraw at once."""
        self.pending = None
        try:
            self.say(action())
        except OpusError as exc:
            self.say(str(exc))
        await self.reload(fresh=True)
