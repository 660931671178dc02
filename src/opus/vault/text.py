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

from opus.errors import NoteError
from opus.vault.yamlio import dump_scalar, load_yaml

BOM = "\ufeff"
OPUS_KEYS = frozenset(
    {"status", "job", "stage", "branch", "pr", "updated", "error"}
)
"""The only frontmatter keys opus writes (SPEC §1); everything else belongs to the user."""

_BOUNDARY = re.compile(r"-{3,}[ \t]*(?:\r?\n)?")
_TOP_KEY = re.compile(r"""(?P<q>["']?)(?P<key>[A-Za-z_][\w.-]*)(?P=q)[ \t]*:(?=[ \t\r\n]|$)""")
_BOUNDARY_BYTES = re.compile(rb"-{3,}[ \t]*(?:\r?\n)?")
_BOM_BYTES = b"\xef\xbb\xbf"


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


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """A note's bytes as (BOM + frontmatter block with its closing line, the rest).

    None when the note has no closed frontmatter. Works on bytes, so a huge note or
    one whose body is not UTF-8 still has a small, decodable head that can be read
    and edited while the rest stays exactly as it was.
    """
    start = len(_BOM_BYTES) if data.startswith(_BOM_BYTES) else 0
    end = data.find(b"\n", start)
    first = data[start:] if end < 0 else data[start : end + 1]
    if end < 0 or not _BOUNDARY_BYTES.fullmatch(first):
        return None
    pos = end + 1
    while pos < len(data):
        end = data.find(b"\n", pos)
        line = data[pos:] if end < 0 else data[pos : end + 1]
        if _BOUNDARY_BYTES.fullmatch(line):
            cut = len(data) if end < 0 else end + 1
            return data[:cut], data[cut:]
        if end < 0:
            break
        pos = end + 1
    return None


def load_frontmatter(note: NoteText) -> Any:
    """The frontmatter parsed in opus's one YAML dialect (None if empty)."""
    return load_yaml(note.frontmatter)


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
        return dump_scalar(value, key="error")
    raise NoteError(f"cannot write a {type(value).__name__} to a note: use text or a number")


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
        whole = load_yaml(line)
    except yaml.YAMLError:
        return ""
    for match in re.finditer(r"[ \t]+#", line):
        try:
            if load_yaml(line[: match.start()]) == whole:
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
    """Apply rendered `fields` to a note's frontmatter; the rest stays byte for byte.

    Only the head (BOM + frontmatter block) is decoded and edited, so a note whose body
    is huge or not UTF-8 can still be edited. Refused (`NoteError`): a note without a
    closed frontmatter block (opus never adds one, nor a second above an unclosed one),
    a frontmatter that parses as something other than a mapping, and an edit whose
    result would not parse back to exactly the written values.
    """
    parts = split_head(data)
    if parts is None:
        raise NoteError(
            "the note has no closed frontmatter block, and opus never adds one; "
            "its problem is shown by `opus status` and `opus doctor`"
        )
    head, tail = parts
    note = split_note(decode(head))
    parsed = _parsed(note)
    if parsed is not None and not isinstance(parsed, dict):
        raise NoteError(
            "the frontmatter is not a mapping of keys, so opus cannot add its own; "
            "write one `key: value` per line"
        )
    edited = edit_frontmatter(note, fields)
    if parsed is not None:
        _verify(edited, fields)
    return edited.render().encode("utf-8") + tail


def _parsed(note: NoteText) -> Any:
    """The loaded frontmatter ({} when empty), or None when it is not valid YAML."""
    try:
        loaded = load_frontmatter(note)
    except (yaml.YAMLError, RecursionError):
        return None
    return {} if loaded is None else loaded


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
        expected = None if value is None else load_yaml(f"{key}: {value}")[key]
        if after.get(key) != expected:
            raise NoteError(
                f"editing `{key}` would not round-trip in this note's frontmatter; "
                "write it as one `key: value` per line"
            )
