"""The board as text: the cells of a card, the summary line, and the one-shot print.

`opus top` draws its live table from `card_cells` and `summary`; when stdout is not a
terminal it prints `render_board` once instead. Paths are shown as `opus status` shows
them (`opus.status.View`: vault- or project-relative, cut to 100 columns unless wide).
"""

from __future__ import annotations

from dataclasses import dataclass

from opus.board.lanes import Board, Card, Lane
from opus.status import View, duration

COLUMNS = ("JOB", "FR", "STAGE", "ROUND", "ELAPSED", "COST", "WHY / PR", "TITLE")
TITLE_WIDTH = 40
ALL_OF_THEM = "`opus status` lists them all"


def card_cells(card: Card, view: View) -> tuple[str, ...]:
    """A card's cells, in `COLUMNS` order."""
    return (
        "-" if card.job is None else str(card.job),
        card.fr,
        card.stage or "-",
        "-" if card.job is None else str(card.iteration),
        duration(card.elapsed_s),
        "-" if card.job is None else f"${card.cost_usd:.2f}",
        _why(card, view),
        _cut(card.title, TITLE_WIDTH),
    )


def _why(card: Card, view: View) -> str:
    """What the card says next to its numbers: why it waits, else its PR, else its error."""
    if card.reason:
        waited = f" ({duration(card.since_s)})" if card.lane is Lane.NEEDS_YOU else ""
        return card.reason + waited
    if card.pr:
        return view.path(card.pr)
    return card.error or ("cancelled" if card.state == "cancelled" else "")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(board: Board) -> str:
    """One line: daemons, claiming, today's spend, open breakers, unusable notes."""
    running = board.daemons_running
    parts = [f"{running} daemon{'s' if running != 1 else ''} running" if running
             else "no daemon running (`opus run`)"]
    parts.append("PAUSED (p resumes)" if board.paused else "claiming")
    spent = " SPENT" if board.spent_today_usd >= board.daily_usd else ""
    parts.append(f"${board.spent_today_usd:.2f} of ${board.daily_usd:.2f} today{spent}")
    parts += [f"breaker {b.key} {b.state}" for b in board.breakers]
    if board.problems:
        parts.append(f"{board.problems} unusable note{'s' if board.problems != 1 else ''}")
    return " · ".join(parts)


@dataclass(frozen=True)
class Line:
    """One line of the board: a lane's title, a card (with its key), or a note."""

    text: str
    key: str | None = None
    """`job:<id>` for a job's card, `fr:<id>` for a planned FR's; None for other lines."""
    lane: Lane | None = None
    """Set on a lane's title line."""


def card_key(card: Card) -> str:
    return f"job:{card.job}" if card.job is not None else f"fr:{card.fr}"


def board_lines(
    board: Board, view: View, *, more: str = ALL_OF_THEM
) -> tuple[Line, list[Line]]:
    """The column heads, and every lane's title and cards, the columns aligned across
    lanes; a lane holding only its latest cards ends with how many more it has (`more`
    says how to see them)."""
    cells = {card_key(c): card_cells(c, view) for lane in board.lanes for c in lane.cards}
    widths = [max(len(row[i]) for row in (COLUMNS, *cells.values())) for i in range(len(COLUMNS))]

    def line(row: tuple[str, ...]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    out: list[Line] = []
    for lane in board.lanes:
        out.append(Line(f"{lane.label} ({lane.total})", lane=lane.lane))
        out += [Line(line(cells[card_key(card)]), key=card_key(card)) for card in lane.cards]
        if lane.older:
            out.append(Line(f"  … and {lane.older} more ({more})"))
    return Line(line(COLUMNS)), out


def render_board(board: Board, view: View | None = None) -> str:
    """The board printed once: a title, the summary, then every lane with its cards."""
    view = view or View()
    heads, lines = board_lines(board, view)
    out = [f"opus board at {board.at:%Y-%m-%d %H:%M:%S %Z}".rstrip(), summary(board), "",
           heads.text]
    for item in lines:
        out += ["", item.text] if item.lane is not None else [item.text]
    return "\n".join(view.fit(text) for text in out)
