"""FR bodies as HTML: CommonMark with raw HTML switched off, so a note cannot inject markup.

markdown-it-py escapes any HTML in the source (`html: False`) and refuses links whose
scheme is `javascript:`, `vbscript:`, `file:` or a non-image `data:` (its `validateLink`).
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

MAX_MARKDOWN_CHARS = 200_000
"""An FR is at most 1 MiB; past this the page shows the start and says so."""


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> str:
    """Safe HTML for `text` (to be marked safe in templates)."""
    cut = len(text) > MAX_MARKDOWN_CHARS
    html: str = _parser().render(text[:MAX_MARKDOWN_CHARS])
    if cut:
        html += f"<p><em>(cut at {MAX_MARKDOWN_CHARS:,} characters)</em></p>"
    return html
