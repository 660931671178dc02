"""Server-rendered SVG bar charts for the metrics page: no script, no chart library.

Each bar carries its value as text and as a `data-value` attribute, so what a person
reads is the number `opus metrics --json` gives (and a test can compare them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
HEIGHT = 200
PAD_TOP = 22
PAD_BOTTOM = 34
PAD_SIDE = 8


@dataclass(frozen=True)
class Bars:
    """A chart: labelled values, how to print a value, and an optional limit line."""

    name: str
    points: Sequence[tuple[str, float]]
    fmt: Callable[[float], str] = lambda value: f"{value:g}"
    limit: float | None = None
    limit_label: str = ""


def _scale(bars: Bars) -> float:
    top = max([value for _label, value in bars.points] + [bars.limit or 0.0, 0.0])
    return (HEIGHT - PAD_TOP - PAD_BOTTOM) / top if top > 0 else 0.0


def _bar(index: int, label: str, value: float, bars: Bars, scale: float) -> str:
    slot = (WIDTH - 2 * PAD_SIDE) / max(1, len(bars.points))
    x = PAD_SIDE + index * slot + slot * 0.15
    height = value * scale
    y = HEIGHT - PAD_BOTTOM - height
    shown = escape(bars.fmt(value))
    name = escape(label)
    return (
        f'<g class="bar" data-label="{name}" data-value="{value!r}">'
        f"<title>{name}: {shown}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}"/>'
        f'<text class="value" x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}">{shown}</text>'
        f'<text class="label" x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}">'
        f"{name}</text></g>"
    )


def _limit(bars: Bars, scale: float) -> str:
    if bars.limit is None:
        return ""
    y = HEIGHT - PAD_BOTTOM - bars.limit * scale
    label = escape(f"{bars.limit_label} {bars.fmt(bars.limit)}".strip())
    return (
        f'<g class="limit" data-value="{bars.limit!r}">'
        f'<line x1="{PAD_SIDE}" x2="{WIDTH - PAD_SIDE}" y1="{y:.1f}" y2="{y:.1f}"/>'
        f'<text x="{WIDTH - PAD_SIDE}" y="{y - 4:.1f}">{label}</text></g>'
    )


def bar_chart(bars: Bars) -> str:
    """The chart as an inline `<svg>` element (every text escaped)."""
    scale = _scale(bars)
    body = "".join(_bar(i, label, value, bars, scale)
                   for i, (label, value) in enumerate(bars.points))
    empty = "" if bars.points else (
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" class="empty">no data yet</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(bars.name)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f'<line class="axis" x1="{PAD_SIDE}" x2="{WIDTH - PAD_SIDE}" '
        f'y1="{HEIGHT - PAD_BOTTOM}" y2="{HEIGHT - PAD_BOTTOM}"/>'
        f"{body}{_limit(bars, scale)}{empty}</svg>"
    )
