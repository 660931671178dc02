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
from opus.vault.text import (
    BOM,
    OPUS_KEYS,
    NoteText,
    decode,
    load_frontmatter,
    split_head,
    split_note,
)

MAX_NOTE_BYTES = 1 << 20
MAX_VALUES = 10_000
"""Frontmatter holding more values than this is refused (YAML alias bombs stay small)."""
MAX_DEPTH = 50

_KEY_LINE = re.compile(
    r"""^(?:- )?(id|status|job)[ \t]*:[ \t]*["']?([^"'#\r\n]*?)["']?[ \t]*(?:#.*)?\r?$""",
    re.MULTILINE,
)
_KNOWN_STATUSES = frozenset(status.value for status in FRStatus)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_FLAGGABLE = frozenset({FRStatus.PLANNED.value})


@dataclass(frozen=True, slots=True)
class InvalidNote:
    """An FR note opus cannot use, with a one-line `error` saying what to fix."""

    path: Path
    error: str
    fr_id: str | None = None
    status: str | None = None
    """The note's `status:` as written, when it could be read."""
    writable: bool = True
    """False when opus cannot safely write `status: invalid` into it (unclosed or non-mapping
    frontmatter, UTF-16, an undecodable head): it is reported, never rewritten."""

    @property
    def should_flag(self) -> bool:
        """True when opus should write `status: invalid` + `error:` back into the note.

        Only notes the user asked to run (`planned`) or whose status itself is wrong
        are flagged; drafts keep their work-in-progress problems to themselves, and a
        note already marked `invalid` is not rewritten.
        """
        if not self.writable or self.status is None:  # reported, never rewritten
            return False
        return self.status.lower() != FRStatus.INVALID.value and self.is_problem

    @property
    def is_problem(self) -> bool:
        """A note that asked to run (or says `invalid`) and cannot: `opus status` lists it.

        A draft, review or done FR with a problem is the user's business until they
        plan it; an unreadable note counts when it says `planned` or carries an FR id.
        """
        if self.status is None:
            return self.fr_id is not None
        status = self.status.lower()
        return status in _FLAGGABLE or status not in _KNOWN_STATUSES - {"invalid"}


@dataclass(frozen=True, slots=True)
class OtherNote:
    """A note under the features folder that is not an FR: opus never touches it."""

    path: Path
    why: str


@dataclass(frozen=True, slots=True)
class ParsedNote:
    """A note whose content is valid; `repo_text` is resolved later by `resolve_repo`."""

    fr: FeatureRequest
    repo_text: str | None
    error: str | None = None
    """The note's `error:` as written (shown for a note marked `invalid`)."""


_CHECKS: tuple[tuple[str, Callable[[f.Meta, Path], Any]], ...] = (
    ("id", f.check_id),
    ("title", f.check_title),
    ("status", f.check_status),
    ("priority", f.check_priority),
    ("repo", f.check_repo),
    ("base", f.check_base),
    ("depends_on", f.check_depends_on),
    ("test_command", f.check_test_command),
    ("setup", f.check_setup),
    ("allowed_paths", f.check_allowed_paths),
    ("budget", f.check_budget),
    ("job", f.check_job),
    ("open_questions", f.check_open_questions),
    ("approve_plan", f.check_approve_plan),
)

Verdict = ParsedNote | InvalidNote | OtherNote


def read_note(path: Path, data: bytes, *, id_pattern: str = f.DEFAULT_ID_PATTERN) -> Verdict:
    """Is the note an FR, and if so is it usable? (pure: no filesystem access)

    Only the head (frontmatter) decides whether a note is opus's, so a huge or
    non-UTF-8 note that asks to run is still recognised and told what is wrong.
    """
    if data.startswith(_UTF16_BOMS):
        return _utf16(path, data, id_pattern)
    parts = split_head(data)
    head = parts[0] if parts is not None else data[:4096]
    try:
        note = split_note(decode(head))
    except NoteError as exc:
        return _unreadable(path, head, str(exc), id_pattern, writable=False)
    if note.opening is None and not note.unclosed:
        return OtherNote(path, "no frontmatter")
    try:
        meta = _frontmatter(note)
    except NoteError as exc:
        return _unreadable(path, head, str(exc), id_pattern, writable=_editable(note))
    identity = fr_identity(meta, path, id_pattern)
    if identity is None:
        return OtherNote(path, _why_not(meta))
    whole = _whole_file_problem(data)
    if whole is not None:
        status = _status_text(meta.get("status", FRStatus.DRAFT.value))
        return InvalidNote(path, whole, identity or None, status)
    if "id" not in meta or meta.get("id") in (None, ""):
        stem = f.stem_id(path.stem, id_pattern)
        meta = {**meta, "id": stem} if stem is not None else meta
    return _validate(path, meta, split_note(decode(data)))


def fr_identity(meta: Mapping[Any, Any], path: Path, id_pattern: str) -> str | None:
    """The FR id when the note is opus's (SPEC §1), else None.

    Opus's: an `id:` matching `id_pattern` (or, without one, a file stem that does),
    `status: planned` in any case, or a `job:` opus wrote — or the `status: invalid` +
    `error:` opus writes into a planned note it cannot use. For such a note with no
    usable id the result is "" (it is opus's, and validation says what is missing).
    """
    raw_id = meta.get("id")
    text_id = raw_id.strip() if isinstance(raw_id, str) else None
    if text_id and re.fullmatch(id_pattern, text_id):
        return text_id
    stem = f.stem_id(path.stem, id_pattern) if not text_id else None
    if stem is not None:
        return stem
    status = meta.get("status")
    job = meta.get("job")
    word = status.strip().lower() if isinstance(status, str) else None
    planned = word == FRStatus.PLANNED.value
    flagged = word == FRStatus.INVALID.value and isinstance(meta.get("error"), str)
    ours = flagged or (isinstance(job, str) and job.strip().isdigit())
    if planned or ours:
        return text_id or ""
    return None


def _why_not(meta: Mapping[Any, Any]) -> str:
    status = meta.get("status")
    if status is not None:
        return f"not an FR (status {status!r}, no FR id)"
    return "not an FR (no FR id, not planned)"


def _whole_file_problem(data: bytes) -> str | None:
    if len(data) > MAX_NOTE_BYTES:
        return (
            f"the note is {len(data)} bytes, over the 1 MiB limit; "
            "move long material into a separate file and link it"
        )
    try:
        decode(data)
    except NoteError as exc:
        return str(exc)
    return None


def _editable(note: NoteText) -> bool:
    """Bad YAML can take an `error:` line; an unclosed block or a list cannot."""
    return not note.unclosed and note.opening is not None and not _loads_as_non_mapping(note)


def _loads_as_non_mapping(note: NoteText) -> bool:
    try:
        loaded = load_frontmatter(note)
    except (yaml.YAMLError, RecursionError):
        return False
    return loaded is not None and not isinstance(loaded, dict)


def _unreadable(
    path: Path, head: bytes, error: str, id_pattern: str, *, writable: bool
) -> InvalidNote | OtherNote:
    """A note whose frontmatter cannot be read: opus's only when its lines say so."""
    fr_id, status = _guess_id_and_status(path, head.decode("utf-8", errors="replace"), id_pattern)
    if fr_id is None and (status or "").lower() != FRStatus.PLANNED.value:
        return OtherNote(path, "not an FR (its frontmatter cannot be read; no FR id)")
    return InvalidNote(path, error, fr_id or None, status, writable=writable)


def _utf16(path: Path, data: bytes, id_pattern: str) -> InvalidNote | OtherNote:
    try:
        text = data.decode("utf-16")
    except UnicodeDecodeError:
        return OtherNote(path, "not an FR (undecodable UTF-16)")
    fr_id, status = _guess_id_and_status(path, text, id_pattern)
    if fr_id is None and (status or "").lower() != FRStatus.PLANNED.value:
        return OtherNote(path, "not an FR (UTF-16, no FR id)")
    error = "the note is UTF-16; re-save it with UTF-8 encoding"
    return InvalidNote(path, error, fr_id or None, status, writable=False)


def _guess_id_and_status(path: Path, text: str, id_pattern: str) -> tuple[str | None, str | None]:
    """Best-effort FR id and status of a note whose frontmatter cannot be parsed.

    The id counts only when it is FR-shaped (or, without one, the file stem is).
    """
    text = text.removeprefix(BOM)
    if "\x00" in text:
        return None, None
    lines = text.splitlines()[:200]
    found: dict[str, str] = {}
    for match in _KEY_LINE.finditer("\n".join(lines)):
        found.setdefault(match.group(1), match.group(2).strip())
    raw_id = found.get("id")
    fr_id = raw_id if raw_id and re.fullmatch(id_pattern, raw_id) else None
    if not raw_id:
        fr_id = f.stem_id(path.stem, id_pattern)
    if fr_id is None and found.get("job", "").isdigit():
        fr_id = ""
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
    status = meta.get("status", FRStatus.DRAFT.value)
    if errors:
        fr_id = values.get("id") or (_status_text(meta.get("id")) or None)
        return InvalidNote(path, "; ".join(errors), fr_id, _status_text(status))
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
    error = meta.get("error")
    return ParsedNote(fr, repo_text, error if isinstance(error, str) else None)


def _status_text(status: object) -> str | None:
    if isinstance(status, list | dict):
        return repr(status)
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
    path: Path,
    data: bytes,
    *,
    vault_root: Path,
    default_repo: Path | None,
    id_pattern: str = f.DEFAULT_ID_PATTERN,
) -> FeatureRequest | InvalidNote | OtherNote:
    """Parse, validate and resolve one note (asks git whether its repo is a repository)."""
    from opus.git import is_repo

    parsed = read_note(path, data, id_pattern=id_pattern)
    if not isinstance(parsed, ParsedNote):
        return parsed
    return resolve_repo(parsed, vault_root=vault_root, default_repo=default_repo, is_repo=is_repo)
