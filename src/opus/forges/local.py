"""The `local` forge: a pull request is a markdown note in the vault.

The note lives at `10_features/05_review/PR-<fr-id>-<branch-slug>.md`. A human reviews
the pushed branch and answers by setting `decision:` in the note's frontmatter:
`approve` (the human takes it from here: the FR is done — opus still never merges),
`reject` (closed), or `changes` (a new round; the `## Review` section and a `comments:`
list say what to change). When opus answers with a comment after a new round, the
comment is appended to the note and `decision:` is reset, so the next decision is about
the new commits.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frontmatter

from opus.config import PRConfig
from opus.errors import ForgeError
from opus.seams import PRFeedback, PullRequest, ReviewComment

REVIEW_FOLDER = Path("10_features") / "05_review"
DECISIONS = {
    "approve": "merged", "approved": "merged",
    "reject": "closed", "rejected": "closed",
    "changes": "changes", "request_changes": "changes", "changes_requested": "changes",
}  # fmt: skip
_FR_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-\d+$")
_DECISION_LINE = re.compile(r"^decision:.*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_REVIEW_HINT = (
    "<!-- Review the branch, then set `decision:` above to approve, reject or changes.\n"
    "     For changes, write what to change here (or list them under `comments:`). -->"
)


class LocalForge:
    """Implements `opus.seams.Forge` with PR notes in the vault; no network."""

    def __init__(self, vault_root: Path) -> None:
        self.vault_root = vault_root

    def __repr__(self) -> str:
        return f"LocalForge({self.vault_root})"

    def find_pr(self, branch: str, base: str | None = None) -> PullRequest | None:
        """The PR note for `branch`, wherever under `10_features/` it was moved."""
        del base  # one note per branch
        for path in self._notes():
            meta = _read_meta(path, strict=False)
            if meta is not None and str(meta.get("branch", "")) == branch:
                return _to_pr(path, meta)
        return None

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Write the PR note; if one for `branch` appeared meanwhile, return that one."""
        fr_id = _fr_id(title, branch)
        path = self.vault_root / REVIEW_FOLDER / f"PR-{fr_id}-{_slug(branch)}.md"
        meta: dict[str, Any] = {
            "pr_for": fr_id, "title": title, "branch": branch, "base": base,
            "state": "open", "decision": None, "number": self._next_number(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        if not _create_new(path, _render_note(meta, body)):
            existing = self.find_pr(branch)
            if existing is None:
                raise ForgeError(f"{path} exists but is not the PR note of {branch}; "
                                 "move it away and let opus retry")
            return existing
        return _to_pr(path, meta)

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback:
        """What the note's `decision:` says. A `changes` decision counts only when the
        note was edited after `since` (opus's last delivery), so one request never starts
        two rounds even if opus did not get to reset it."""
        path = self._locate(pr)
        text = _read_text(path)
        meta = _read_meta(path, strict=True) or {}
        raw = str(meta.get("decision") or "").strip().lower()
        if not raw:
            return PRFeedback(state="open")
        decision = DECISIONS.get(raw)
        if decision is None:
            raise ForgeError(f"`decision: {raw}` in {path} is not one of approve, reject, "
                             "changes; fix the note")
        if decision != "changes":
            return PRFeedback(state="merged" if decision == "merged" else "closed")
        if since is not None and _modified(path) <= since:
            return PRFeedback(state="open")
        review = _review_section(text)
        comments = _comments(meta.get("comments"))
        if review:
            comments = (ReviewComment(path=None, line=None, body=review), *comments)
        return PRFeedback(state="open", changes_requested=True, comments=comments, summary=review)

    def comment(self, pr: PullRequest, body: str) -> None:
        """Append `body` to the note and reset `decision:` for the next review."""
        path = self._locate(pr)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = _reset_decision(_read_text(path))
        _atomic_write(path, f"{text.rstrip()}\n\n### opus — {stamp}\n\n{body.strip()}\n")

    def _notes(self) -> list[Path]:
        root = self.vault_root / "10_features"
        return sorted(root.rglob("PR-*.md")) if root.is_dir() else []

    def _next_number(self) -> int:
        numbers = [_int((_read_meta(p, strict=False) or {}).get("number")) for p in self._notes()]
        return max(numbers, default=0) + 1

    def _locate(self, pr: PullRequest) -> Path:
        path = Path(pr.url)
        if path.is_file():
            return path
        moved = self.find_pr(pr.branch)
        if moved is None:
            raise ForgeError(f"the PR note for {pr.branch} ({pr.url}) is gone; "
                             "restore it, or cancel the FR with `opus cancel`")
        return Path(moved.url)


def make(
    pr: PRConfig, *, repo: Path, remote: str, vault_root: Path, token: str | None
) -> LocalForge:
    """The local forge: PR notes under `vault_root`; needs no token or API."""
    del pr, repo, remote, token  # Nothing leaves the machine but the pushed branch.
    return LocalForge(vault_root)


def _fr_id(title: str, branch: str) -> str:
    # deliver titles PRs "FR-061: ..."; else take it from the branch ".../fr-061-slug".
    head = title.split(":", 1)[0].strip()
    if _FR_ID.match(head):
        return head
    match = re.match(r"^([a-z][a-z0-9]*-\d+)", branch.rsplit("/", 1)[-1], re.IGNORECASE)
    return match[1].upper() if match else "FR"


def _slug(branch: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", branch.rsplit("/", 1)[-1]).strip("-") or "branch"


def _render_note(meta: dict[str, Any], body: str) -> str:
    lines = [f"{key}:" if value is None else f"{key}: {json.dumps(value)}"
             for key, value in meta.items()]
    return "---\n" + "\n".join(lines) + f"\n---\n{body.strip()}\n\n## Review\n\n{_REVIEW_HINT}\n"


def _to_pr(path: Path, meta: dict[str, Any]) -> PullRequest:
    return PullRequest(
        number=_int(meta.get("number")),
        url=str(path),
        branch=str(meta.get("branch", "")),
        base=str(meta.get("base", "")),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ForgeError(f"cannot read the PR note {path}: {exc}; fix or restore it") from exc


def _read_meta(path: Path, *, strict: bool) -> dict[str, Any] | None:
    """The note's frontmatter; None (or a `ForgeError` when `strict`) if unreadable."""
    try:
        meta = frontmatter.loads(_read_text(path)).metadata
    except ForgeError:
        if strict:
            raise
        return None
    except Exception as exc:  # the YAML parser raises many types for hand-edited notes
        if strict:
            raise ForgeError(f"the frontmatter of {path} is not valid YAML ({exc}); "
                             "fix the note") from exc
        return None
    return dict(meta) if "pr_for" in meta else None


def _review_section(text: str) -> str:
    match = re.search(r"^## Review[ \t]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        return ""
    return _HTML_COMMENT.sub("", match[1]).strip()


def _comments(raw: object) -> tuple[ReviewComment, ...]:
    if not isinstance(raw, list):
        return (ReviewComment(None, None, str(raw)),) if raw else ()
    out = []
    for item in raw:
        if isinstance(item, dict):
            line = item.get("line")
            out.append(ReviewComment(
                path=str(item["path"]) if item.get("path") else None,
                line=line if isinstance(line, int) else None,
                body=str(item.get("body", "")),
            ))
        elif item:
            out.append(ReviewComment(None, None, str(item)))
    return tuple(out)


def _reset_decision(text: str) -> str:
    end = text.find("\n---", 3) if text.startswith("---") else -1
    if end < 0:
        return text
    return _DECISION_LINE.sub("decision:", text[:end], count=1) + text[end:]


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _create_new(path: Path, text: str) -> bool:
    """Write `path` atomically unless it exists; False when it already did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, text)
    try:
        os.link(tmp, path)  # fails if `path` exists: two workers never both create it
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _atomic_write(path: Path, text: str) -> None:
    os.replace(_write_temp(path, text), path)


def _write_temp(path: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(name)
