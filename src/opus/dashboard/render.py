"""Jinja2 with autoescaping on everywhere, and the filters the templates use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from opus.dashboard.markdown import render_markdown

TEMPLATES = Path(__file__).parent / "templates"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def is_web_link(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("https://", "http://"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, money=money, percent=percent,
                       markdown=lambda text: Markup(render_markdown(str(text))))
    env.tests["web_link"] = is_web_link
    return env


def render(name: str, **values: Any) -> str:
    return environment().get_template(name).render(**values)
