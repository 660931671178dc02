"""Validation of an FR's frontmatter keys: one small checker per key.

Each checker takes the frontmatter mapping and returns the clean value or raises
`NoteError` with a message that names the key, what was found and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from opus.domain import FRStatus, Priority
from opus.errors import NoteError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What an explicit `id:` may look like: it ends up in branch names and CLI arguments."""
DEFAULT_ID_PATTERN = r"[A-Z][A-Z0-9]*-\d+"
"""`vault.id_pattern`'s default: what an FR's id looks like (FR-12, API-7)."""
BUDGET_KEYS = ("usd", "minutes")

Meta = Mapping[Any, Any]
E = TypeVar("E", bound=StrEnum)


def _text(meta: Meta, key: str, example: str, *, required: bool = False) -> str | None:
    """A one-value key as stripped text (numbers accepted); None when absent.

    An empty value of a `required` key also reads as None, so the caller reports it
    as missing instead of suggesting to remove it.
    """
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise NoteError(f"`{key}` must be text like `{key}: {example}`, got {_kind(value)}")
    text = str(value).strip()
    if not text and required:
        return None
    if not text:
        raise NoteError(f"`{key}` is empty: write `{key}: {example}` or remove the key")
    return text


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", bool: "true/false", type(None): "nothing"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")


def stem_id(stem: str, pattern: str = DEFAULT_ID_PATTERN) -> str | None:
    """The id a file stem names: `FR-123` for `FR-123.md` or `FR-123 Rate limiting.md`."""
    match = re.match(f"(?:{pattern})", stem)
    if match is None or not match.group(0):
        return None
    rest = stem[match.end() :]
    return match.group(0) if not rest or rest[0] in " _" else None


def check_id(meta: Meta, path: Path) -> str:
    """`id:`, or the file stem when it looks like an id (FR-123, `FR-123 Title`)."""
    fr_id = _text(meta, "id", "FR-123", required=True)
    if fr_id is None:
        found = stem_id(path.stem)
        if found is not None:
            return found
        raise NoteError(
            "missing id: add `id: FR-123` to the frontmatter "
            "(or name the file after the id, e.g. FR-123.md)"
        )
    if not ID_PATTERN.fullmatch(fr_id):
        raise NoteError(
            f"id {fr_id!r} may hold only letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit); use e.g. `id: FR-123`"
        )
    return fr_id


def check_title(meta: Meta, path: Path) -> str:
    title = _text(meta, "title", "Add rate limiting", required=True)
    if title is None:
        raise NoteError("missing title: add `title: <one-line summary>` to the frontmatter")
    return title


def check_status(meta: Meta, path: Path) -> FRStatus:
    """`status:`; a note without one is a draft."""
    return _choice(meta, "status", FRStatus, FRStatus.DRAFT, "planned")


def check_priority(meta: Meta, path: Path) -> Priority:
    return _choice(meta, "priority", Priority, Priority.MEDIUM, "high")


def _choice(meta: Meta, key: str, kind: type[E], default: E, example: str) -> E:
    """One of an enum's values (case-insensitive); the message lists them all."""
    raw = _text(meta, key, example)
    if raw is None:
        return default
    try:
        return kind(raw.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise NoteError(f"unknown {key} {raw!r}: use one of {allowed}") from None


def check_repo(meta: Meta, path: Path) -> str | None:
    return _text(meta, "repo", "../api")


def check_base(meta: Meta, path: Path) -> str | None:
    return _text(meta, "base", "main")


def check_test_command(meta: Meta, path: Path) -> str | None:
    return _text(meta, "test_command", "pytest -q")


def check_setup(meta: Meta, path: Path) -> str | None:
    return _text(meta, "setup", "npm ci")


def check_depends_on(meta: Meta, path: Path) -> tuple[str, ...]:
    """Ids, `[[FR-045]]` / `[[FR-045|alias]]` wiki-links, or unquoted `[[FR-045]]`.

    Unquoted `[[FR-045]]` is YAML for a list inside a list; it is read as the link the
    user meant. Link targets keep only the note name (no folder, heading or `.md`).
    """
    raw = meta.get("depends_on")
    items = [raw] if isinstance(raw, str) else raw
    if raw is None:
        return ()
    if not isinstance(items, list):
        raise NoteError(_DEPENDS_HINT + f"; got {_kind(raw)}")
    return tuple(_dependency(item) for item in items)


_DEPENDS_HINT = (
    'depends_on must be a list of ids or wiki-links, e.g. `depends_on: [FR-045, "[[FR-046]]"]`'
)


def _dependency(item: object) -> str:
    nested = False
    while isinstance(item, list) and len(item) == 1:
        item, nested = item[0], True
    if nested and isinstance(item, str):
        item = f"[[{item}]]"
    if not isinstance(item, str | int) or isinstance(item, bool):
        raise NoteError(_DEPENDS_HINT + f"; got an entry that is {_kind(item)}")
    text = str(item).strip()
    if text.startswith("[[") and text.endswith("]]"):
        text = text[2:-2].split("|", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1].strip()
        text = text.removesuffix(".md")
    if not text or "[" in text or "]" in text:
        raise NoteError(_DEPENDS_HINT + f"; got {item!r}")
    return text


def check_allowed_paths(meta: Meta, path: Path) -> tuple[str, ...]:
    raw = meta.get("allowed_paths")
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise NoteError(
            'allowed_paths must be a list of glob strings, e.g. `allowed_paths: ["src/**"]`'
            f"; got {raw!r}"
        )
    return tuple(item.strip() for item in items)


def check_budget(meta: Meta, path: Path) -> tuple[float | None, float | None]:
    """`budget: {usd: 5, minutes: 60}` → (usd, minutes); each part optional."""
    raw = meta.get("budget")
    if raw is None:
        return None, None
    hint = "budget must be a mapping like `budget: {usd: 5, minutes: 60}`"
    if not isinstance(raw, dict):
        raise NoteError(f"{hint}; got {_kind(raw)}")
    unknown = sorted(str(key) for key in raw if key not in BUDGET_KEYS)
    if unknown:
        raise NoteError(f"{hint}; unknown budget key(s) {', '.join(unknown)}")
    values = [raw.get(key) for key in BUDGET_KEYS]
    for key, value in zip(BUDGET_KEYS, values, strict=True):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (numeric and value >= 0):
            raise NoteError(f"{hint}; budget.{key} must be a number >= 0, got {value!r}")
    usd, minutes = values
    return (None if usd is None else float(usd)), (None if minutes is None else float(minutes))


def check_job(meta: Meta, path: Path) -> int | None:
    """opus's own `job:` key; a value it did not write is ignored, never an error."""
    job = meta.get("job")
    if isinstance(job, int) and not isinstance(job, bool):
        return job
    return int(job) if isinstance(job, str) and job.strip().isdigit() else None


OPEN_QUESTIONS = ("ask", "recommend", "ignore")
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def check_open_questions(meta: Meta, path: Path) -> str | None:
    """`open_questions: ask | recommend | ignore`: this FR's `pipeline.open_questions`."""
    raw = _text(meta, "open_questions", "recommend")
    if raw is None:
        return None
    if raw.lower() not in OPEN_QUESTIONS:
        raise NoteError(
            f"`open_questions: {raw}` is not one of {', '.join(OPEN_QUESTIONS)}; "
            "write e.g. `open_questions: recommend`"
        )
    return raw.lower()


def check_approve_plan(meta: Meta, path: Path) -> bool | None:
    """`approve_plan: true | false`: whether a person approves this FR's plan."""
    raw = meta.get("approve_plan")
    if raw is None or isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise NoteError(f"`approve_plan` must be true or false, got {_kind(raw)}")
