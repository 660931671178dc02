"""One note in, one verdict out: a `FeatureRequest` or an `InvalidNote` saying why not.

`read_note` is pure (bytes in) so its result can be cached per file version; the repo
check, which asks git, happens afterwards in `resolve_repo`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from opus.domain import FeatureRequest, FRStatus
from opus.errors import NoteError
from opus.vault import fields as f
from opus.vault.text import OPUS_KEYS, NoteText, decode, load_frontmatter, split_note

MAX_NOTE_BYTES = 1 << 20
MAX_VALUES = 10_000
"""Frontmatter holding more values than this is refused (YAML alias bombs stay small)."""
MAX_DEPTH = 50

_KEY_LINE = re.compile(r"""^(id|status)[ \t]*:[ \t]*["']?([\w.-]+)""", re.MULTILINE)
_KNOWN_STATUSES = frozenset(status.value for status in FRStatus)


@dataclass(frozen=True)
class InvalidNote:
    """A note opus cannot use, with a one-line `error` saying what to fix."""

    path: Path
    error: str
    fr_id: str | None = None
    status: str | None = None
    """The note's `status:` as written, when it could be read."""

    @property
    def should_flag(self) -> bool:
        """True when opus should write `status: invalid` back into the note.

        Only notes the user asked to run (`planned`) or whose status itself is wrong
        are flagged; drafts, ideas and plain notes without frontmatter are left alone,
        and a note already marked `invalid` is not rewritten.
        """
        if self.status is None:
            return False
        status = self.status.lower()
        return status == FRStatus.PLANNED or status not in _KNOWN_STATUSES


@dataclass(frozen=True)
class ParsedNote:
    """A note whose content is valid; `repo_text` is resolved later by `resolve_repo`."""

    fr: FeatureRequest
    repo_text: str | None


_CHECKS: tuple[tuple[str, Callable[[f.Meta, Path], Any]], ...] = (
    ("id", f.check_id),
    ("title", f.check_title),
    ("status", f.check_status),
    ("priority", f.check_priority),
    ("repo", f.check_repo),
    ("base", f.check_base),
    ("depends_on", f.check_depends_on),
    ("test_command", f.check_test_command),
    ("allowed_paths", f.check_allowed_paths),
    ("budget", f.check_budget),
    ("job", f.check_job),
)


def read_note(path: Path, data: bytes) -> ParsedNote | InvalidNote:
    """Parse and validate a note's bytes (no filesystem access)."""
    if len(data) > MAX_NOTE_BYTES:
        return InvalidNote(
            path,
            f"the note is {len(data)} bytes, over the 1 MiB limit; "
            "move long material into a separate file and link it",
        )
    try:
        note = split_note(decode(data))
        meta = _frontmatter(note)
    except NoteError as exc:
        return InvalidNote(path, str(exc), *_guess_id_and_status(path, data))
    return _validate(path, meta, note)


def _guess_id_and_status(path: Path, data: bytes) -> tuple[str | None, str | None]:
    """Best-effort id and status of a note whose frontmatter cannot be parsed."""
    if b"\x00" in data:
        return None, None
    note = split_note(data.decode("utf-8", errors="replace"))
    # An unclosed block still shows what the user meant in its first lines.
    text = note.body if note.unclosed else note.frontmatter
    found = {match.group(1): match.group(2) for match in _KEY_LINE.finditer(text)}
    stem = f.STEM_ID.fullmatch(path.stem)
    fr_id = found.get("id") or (stem.group("id") if stem else None)
    return fr_id, found.get("status")


def _frontmatter(note: NoteText) -> dict[Any, Any]:
    if note.unclosed:
        raise NoteError(
            "the frontmatter opened with --- on line 1 is never closed; "
            "add a line with just --- after the last key"
        )
    if note.opening is None:
        return {}
    try:
        meta = load_frontmatter(note)
    except yaml.MarkedYAMLError as exc:
        raise NoteError(_yaml_message(exc)) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise NoteError(f"bad YAML in the frontmatter ({exc}); fix its syntax") from exc
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise NoteError(
            "the frontmatter is not a mapping of keys (it reads as "
            f"{type(meta).__name__}); write one `key: value` per line"
        )
    _bounded(meta, [MAX_VALUES], 0)
    return meta


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "syntax error"
    return (
        f"bad YAML in the frontmatter{where}: {problem}; fix the syntax "
        "(quote values that contain ': ' or ' #')"
    )


def _bounded(value: object, budget: list[int], depth: int) -> None:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise NoteError(
            f"the frontmatter is too large or nested (over {MAX_VALUES} values or "
            f"{MAX_DEPTH} levels); keep it to the FR's keys"
        )
    children: list[Any] = []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    for child in children:
        _bounded(child, budget, depth + 1)


def _validate(path: Path, meta: dict[Any, Any], note: NoteText) -> ParsedNote | InvalidNote:
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, check in _CHECKS:
        try:
            values[name] = check(meta, path)
        except NoteError as exc:
            errors.append(str(exc))
    status = meta.get("status", FRStatus.DRAFT.value) if note.opening else None
    if errors:
        return InvalidNote(path, "; ".join(errors), values.get("id"), _status_text(status))
    body = note.body.replace("\r\n", "\n").strip()
    usd, minutes = values.pop("budget")
    repo_text = values.pop("repo")
    fr = FeatureRequest(
        **values,
        path=path,
        body=body,
        content_hash=content_hash(meta, body),
        budget_usd=usd,
        budget_minutes=minutes,
    )
    return ParsedNote(fr, repo_text)


def _status_text(status: object) -> str | None:
    return None if status is None else str(status).strip()


def content_hash(meta: Mapping[Any, Any], body: str) -> str:
    """sha256 over the user's keys and the body; opus's own keys do not count.

    So a write-back (status, job, ...) never makes the same FR look like new content.
    """
    user = {str(key): value for key, value in meta.items() if key not in OPUS_KEYS}
    canonical = json.dumps(
        {"meta": user, "body": body}, sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def resolve_repo(
    parsed: ParsedNote,
    *,
    vault_root: Path,
    default_repo: Path | None,
    is_repo: Callable[[Path], bool],
) -> FeatureRequest | InvalidNote:
    """Fill in the FR's repo: `repo:` relative to the vault's parent, else the default.

    Only `planned` notes must name an existing git repo: a draft may not have one yet,
    and a `done` note whose repo moved still satisfies its dependants.
    """
    fr, text = parsed.fr, parsed.repo_text
    repo = default_repo
    if text is not None:
        repo = (vault_root.parent / Path(text).expanduser()).resolve()
    if fr.status is not FRStatus.PLANNED:
        return replace(fr, repo=repo)
    problem = _repo_problem(text, repo, vault_root, is_repo)
    if problem is not None:
        return InvalidNote(fr.path, problem, fr.id, fr.status.value)
    return replace(fr, repo=repo)


def _repo_problem(
    text: str | None, repo: Path | None, vault_root: Path, is_repo: Callable[[Path], bool]
) -> str | None:
    if repo is None:
        return "no repo: add `repo:` or set git.default_repo"
    source = f"repo {text!r}" if text is not None else "git.default_repo"
    hint = (
        f"fix `repo:` (relative paths start at {vault_root.parent})"
        if text is not None
        else "fix git.default_repo in opus.toml"
    )
    if not repo.exists():
        return f"{source} points to {repo}, which does not exist; {hint}"
    if not is_repo(repo):
        return f"{source} points to {repo}, which is not a git repository; {hint} or run git init"
    return None


def parse_note(
    path: Path, data: bytes, *, vault_root: Path, default_repo: Path | None
) -> FeatureRequest | InvalidNote:
    """Parse, validate and resolve one note (asks git whether its repo is a repository)."""
    from opus.git import is_repo

    parsed = read_note(path, data)
    if isinstance(parsed, InvalidNote):
        return parsed
    return resolve_repo(parsed, vault_root=vault_root, default_repo=default_repo, is_repo=is_repo)
