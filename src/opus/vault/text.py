"""A note as text: BOM, line endings, the frontmatter block and surgical key edits.

Pure functions over `str`/`bytes`; nothing here touches the filesystem. The editor works
on lines, not on a YAML round trip, because a round trip would reorder keys, drop
comments and requote values the user wrote by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from opus.errors import NoteError

BOM = "\ufeff"
OPUS_KEYS = frozenset({"status", "job", "stage", "branch", "pr", "updated", "error"})
"""The only frontmatter keys opus writes; everything else belongs to the user."""

_BOUNDARY = re.compile(r"-{3,}[ \t]*(?:\r?\n)?")
_TOP_KEY = re.compile(r"""(?P<q>["']?)(?P<key>[A-Za-z_][\w.-]*)(?P=q)[ \t]*:(?=[ \t\r\n]|$)""")
_YAML = YAMLHandler()


@dataclass(frozen=True)
class NoteText:
    """A note split into its parts; `render()` joins them back byte for byte."""

    bom: str
    opening: str | None
    """The opening `---` line with its newline; None when the note has no frontmatter."""
    fm_lines: tuple[str, ...]
    closing: str
    body: str
    newline: str
    unclosed: bool = False
    """The note starts with `---` but no closing line follows."""

    @property
    def frontmatter(self) -> str:
        return "".join(self.fm_lines)

    def render(self) -> str:
        head = (self.opening or "") + self.frontmatter + self.closing
        return self.bom + head + self.body


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split on LF only (YAML's other breaks stay inside)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def split_note(text: str) -> NoteText:
    """Split decoded note text into BOM, frontmatter lines and body."""
    bom = BOM if text.startswith(BOM) else ""
    rest = text[len(bom) :]
    lines = split_lines(rest)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if not lines or not _BOUNDARY.fullmatch(lines[0]):
        return NoteText(bom, None, (), "", rest, newline)
    for index in range(1, len(lines)):
        if _BOUNDARY.fullmatch(lines[index]):
            body = "".join(lines[index + 1 :])
            return NoteText(bom, lines[0], tuple(lines[1:index]), lines[index], body, newline)
    return NoteText(bom, None, (), "", rest, newline, unclosed=True)


def load_frontmatter(note: NoteText) -> Any:
    """The frontmatter parsed with python-frontmatter's safe YAML loader (None if empty)."""
    return _YAML.load(note.frontmatter)


def render_scalar(value: object) -> str:
    """`value` as a one-line YAML scalar that parses back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NoteError(f"cannot write {value!r} to a note: only finite numbers are allowed")
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return value if _plain_ok(value) else _double_quoted(value)
    raise NoteError(f"cannot write a {type(value).__name__} to a note: use text or a number")


def _plain_ok(text: str) -> bool:
    if not text or text != text.strip() or any(ch in text for ch in "\r\n\x85\u2028\u2029"):
        return False
    try:
        return bool(yaml.safe_load(f"k: {text}") == {"k": text})
    except yaml.YAMLError:
        return False


def _double_quoted(text: str) -> str:
    dumped = yaml.safe_dump(text, default_style='"', width=math.inf, allow_unicode=True)
    return str(dumped).rstrip("\n")


def key_spans(lines: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Top-level keys as (key, first line, end line exclusive), in file order.

    A key's span holds its indented continuation lines and block-sequence items;
    blank lines belong to it only when more continuation follows. Comment lines at
    column 0 end the span: they usually describe the next key.
    """
    spans: list[tuple[str, int, int]] = []
    index = 0
    while index < len(lines):
        match = _TOP_KEY.match(lines[index])
        if match is None:
            index += 1
            continue
        end = _span_end(lines, index + 1)
        spans.append((match.group("key"), index, end))
        index = end
    return spans


def _span_end(lines: tuple[str, ...], start: int) -> int:
    end = start
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        if line[0] in " \t" or line.startswith("- ") or line.rstrip("\r\n") == "-":
            end = index + 1
            continue
        break
    return end


def edit_frontmatter(note: NoteText, fields: Mapping[str, str | None]) -> NoteText:
    """Set (rendered scalar) or remove (None) top-level keys; leave every other line alone.

    An existing key is replaced in place (later duplicates removed), keeping a trailing
    comment on a one-line value; a new key is appended at the end of the block; a note
    without frontmatter gets one at the top.
    """
    lines = note.fm_lines
    spans = key_spans(lines)
    first: dict[str, tuple[int, int]] = {}
    drop: set[int] = set()
    for key, start, end in spans:
        if key not in fields:
            continue
        if key in first or fields[key] is None:
            drop.update(range(start, end))
        else:
            first[key] = (start, end)
    out: list[str] = []
    for index, line in enumerate(lines):
        if index in drop:
            continue
        owner = _key_starting_at(index, first)
        if owner is None:
            out.append(line)
        elif index == first[owner][0]:
            single = first[owner][1] - first[owner][0] == 1
            out.append(_replace_line(line, str(fields[owner]), keep_comment=single))
    for key, value in fields.items():
        if value is not None and key not in first:
            out.append(f"{key}: {value}{note.newline}")
    if note.opening is None:
        opening, closing = "---" + note.newline, "---" + note.newline
        return replace(note, opening=opening, fm_lines=tuple(out), closing=closing)
    return replace(note, fm_lines=tuple(out))


def _key_starting_at(index: int, first: dict[str, tuple[int, int]]) -> str | None:
    for key, (start, end) in first.items():
        if start <= index < end:
            return key
    return None


def _replace_line(line: str, value: str, *, keep_comment: bool) -> str:
    match = _TOP_KEY.match(line)
    assert match is not None  # only called on lines key_spans matched
    ending = line[len(line.rstrip("\r\n")) :] or "\n"
    comment = trailing_comment(line.rstrip("\r\n")) if keep_comment else ""
    return f"{line[: match.end()]} {value}{comment}{ending}"


def trailing_comment(line: str) -> str:
    """The `   # ...` tail of a one-line `key: value` line, or "" when there is none."""
    try:
        whole = yaml.safe_load(line)
    except yaml.YAMLError:
        return ""
    for match in re.finditer(r"[ \t]+#", line):
        try:
            if yaml.safe_load(line[: match.start()]) == whole:
                return line[match.start() :]
        except yaml.YAMLError:
            continue
    return ""


def decode(data: bytes) -> str:
    """UTF-8 text of a note; NoteError naming the first bad byte and its line."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise NoteError(
            f"the note is binary (NUL byte at offset {offset}); "
            "keep only markdown text in the vault"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NoteError(
            f"the note is not valid UTF-8 (byte {exc.start}, line {line}); "
            "re-save it with UTF-8 encoding"
        ) from exc


def edit_note(data: bytes, fields: Mapping[str, str | None]) -> bytes:
    """Apply rendered `fields` to a note's bytes; refuse if the result would not parse.

    When the original frontmatter parsed as a mapping, the edited one must too, and must
    hold exactly the written values: a line edit can never silently corrupt a note.
    """
    note = split_note(decode(data))
    edited = edit_frontmatter(note, fields)
    before = _mapping_or_none(note)
    if before is not None or note.opening is None:
        _verify(edited, fields)
    return edited.render().encode("utf-8")


def _mapping_or_none(note: NoteText) -> dict[Any, Any] | None:
    if note.opening is None:
        return None
    try:
        loaded = load_frontmatter(note)
    except (yaml.YAMLError, RecursionError):
        return None
    if loaded is None:
        return {}
    return loaded if isinstance(loaded, dict) else None


def _verify(note: NoteText, fields: Mapping[str, str | None]) -> None:
    after = _mapping_or_none(note)
    if after is None:
        raise NoteError(
            "cannot edit this note's frontmatter line by line without breaking it "
            "(is it a flow mapping `{...}`?); write it as one `key: value` per line"
        )
    for key, value in fields.items():
        expected = None if value is None else yaml.safe_load(f"k: {value}")["k"]
        if after.get(key) != expected:
            raise NoteError(
                f"editing `{key}` would not round-trip in this note's frontmatter; "
                "write it as one `key: value` per line"
            )
