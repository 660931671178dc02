"""The `local` forge: a pull request is a markdown note in the vault.

The note lives at `<features>/05_review/PR-<fr-id>-<branch-slug>.md`, links its FR as
`[[FR-12]]` and is written with the vault's YAML emitter, so any title reads back. A
human reviews the pushed branch and answers by setting `decision:` in the note's
frontmatter: `approve` (the human takes it from here: the FR is done — opus still never
merges), `reject` (closed), or `changes` (a new round: what the human writes under
`## Your review`, plus a `comments:` list, is what the coder is sent — never the agent's
own `## Agent review`). The note's `state:` follows the PR (open → merged / closed); a
closed or merged note is history: a later job for the FR opens a new note and never
inherits the old `decision:`. When opus answers after a new round, the request it
handled and its answer are appended, `## Your review` is emptied and `decision:` reset,
so the next decision is about the new commits.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from opus.config import PRConfig
from opus.errors import ForgeError, NoteError
from opus.seams import CIReport, PRFeedback, PullRequest, RequiredChecks, ReviewComment
from opus.vault.leftovers import create_temp
from opus.vault.text import load_frontmatter, split_note
from opus.vault.yamlio import dump_mapping

FEATURES = Path("10_features")
REVIEW = "05_review"
HUMAN_HEADING = "## Your review"
AGENT_HEADING = "## Agent review"
OPEN = "open"
DECISIONS = {
    "approve": "merged", "approved": "merged",
    "reject": "closed", "rejected": "closed",
    "changes": "changes", "request_changes": "changes", "changes_requested": "changes",
}  # fmt: skip
_FR_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-\d+$")
_DECISION_LINE = re.compile(r"^decision:.*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_REVIEW_HINT = (
    "<!-- opus reads only this section. Review the branch, then set `decision:` above:\n"
    "     approve (done), reject (closed), or changes. To request changes, set\n"
    "     `decision: changes` and write what to change below this comment (or list\n"
    "     them under `comments:` in the frontmatter); opus starts a new round. -->"
)
_FR_LINK = re.compile(r"^Feature request: .*$", re.MULTILINE)
_AGENT_REVIEW = re.compile(r"^## Review[ \t]*$", re.MULTILINE)
_OPUS_ENTRY = re.compile(r"^### opus — ", re.MULTILINE)


class LocalForge:
    """Implements `opus.seams.Forge` with PR notes in the vault; no network."""

    def __init__(self, vault_root: Path, features_dir: Path | str = FEATURES) -> None:
        self.vault_root = vault_root
        self.features = vault_root / features_dir

    def __repr__(self) -> str:
        return f"LocalForge({self.vault_root})"

    def find_pr(self, branch: str, base: str | None = None) -> PullRequest | None:
        """The PR note for `branch`, wherever under the features folder it was moved:
        the open one, else the last closed or merged one (which `feedback` reopens)."""
        del base  # one note per branch
        found: list[tuple[bool, Path, dict[str, Any]]] = []
        for path in self._notes():
            meta = _read_meta(path, strict=False)
            if meta is not None and str(meta.get("branch", "")) == branch:
                found.append((_state(meta) == OPEN, path, meta))
        if not found:
            return None
        _open, path, meta = max(found, key=lambda item: (item[0], _int(item[2].get("number"))))
        return _to_pr(path, meta)

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Write the PR note; if an open one for `branch` appeared meanwhile, return it."""
        fr_id = _fr_id(title, branch)
        number = self._next_number()
        meta: dict[str, Any] = {
            "pr_for": f"[[{fr_id}]]", "title": title, "branch": branch, "base": base,
            "state": OPEN, "decision": None, "number": number,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        text = _render_note(meta, _note_body(body, fr_id))
        stem = f"PR-{fr_id}-{_slug(branch)}"
        for path in self._names(stem, number):
            if _create_new(path, text):
                return _to_pr(path, meta)
            existing = self.find_pr(branch)
            if existing is not None:
                return existing
        raise ForgeError(f"no free name for the PR note {stem}.md in {self.features / REVIEW}; "
                         "tidy that folder and let opus retry")

    def _names(self, stem: str, number: int) -> list[Path]:
        folder = self.features / REVIEW
        return [folder / f"{stem}.md", folder / f"{stem}-{number}.md"] + [
            folder / f"{stem}-{number}-{n}.md" for n in range(2, 20)
        ]

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback:
        """What the note's `decision:` says. A `changes` decision counts only when the
        note was edited after `since` (opus's last delivery), so one request never starts
        two rounds even if opus did not get to reset it."""
        path = self._locate(pr)
        text = _read_text(path)
        meta = _read_meta(path, strict=True) or {}
        if _state(meta) != OPEN:
            # Its decision was taken for an earlier job or round; asked again (a retry, a
            # re-plan), the PR is reopened and waits for a new decision.
            _atomic_write(path, _reopen(text))
            return PRFeedback(state="open")
        raw = str(meta.get("decision") or "").strip().lower()
        if not raw:
            return PRFeedback(state="open")
        decision = DECISIONS.get(raw)
        if decision is None:
            raise ForgeError(f"`decision: {raw}` in {path} is not one of approve, reject, "
                             "changes; fix the note")
        if decision != "changes":
            ended: Literal["merged", "closed"] = "merged" if decision == "merged" else "closed"
            _set_state(path, ended)
            return PRFeedback(state=ended)
        if since is not None and _modified(path) <= since:
            return PRFeedback(state="open")
        review = human_review(text)
        comments = _comments(meta.get("comments"))
        if review:
            comments = (ReviewComment(path=None, line=None, body=review), *comments)
        return PRFeedback(state="open", changes_requested=True, comments=comments, summary=review)

    def checks(self, sha: str, *, details: bool = False) -> CIReport:
        """The local provider has no CI: every commit's checks are `none`."""
        del details
        return CIReport(sha=sha, state="none")

    def required_checks(self, base: str) -> RequiredChecks | None:
        """No CI, no rule: None."""
        del base
        return None

    def comment(self, pr: PullRequest, body: str) -> None:
        """Append the handled request and `body` to the note; reset `decision:` and
        empty `## Your review` for the next review."""
        path = self._locate(pr)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = _reset_decision(_read_text(path))
        text, handled = _take_human_review(text)
        quoted = "".join(f"> {line}\n" for line in handled.splitlines())
        asked = f"Requested:\n\n{quoted}\n" if handled else ""
        _atomic_write(path, f"{text.rstrip()}\n\n### opus — {stamp}\n\n{asked}{body.strip()}\n")

    def mergeable(self, pr: PullRequest) -> bool | None:
        """A note cannot tell: opus checks the branch against its base with git itself."""
        del pr
        return None

    def _notes(self) -> list[Path]:
        root = self.features
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
    pr: PRConfig,
    *,
    repo: Path,
    remote: str,
    vault_root: Path,
    token: str | None,
    features_dir: Path | str = FEATURES,
) -> LocalForge:
    """The local forge: PR notes under `vault_root`; needs no token or API."""
    del pr, repo, remote, token  # Nothing leaves the machine but the pushed branch.
    return LocalForge(vault_root, features_dir)


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
    """Frontmatter through the vault's YAML emitter (any title reads back as written);
    an empty value is written as a bare `key:` for the human to fill in."""
    lines = [f"{key}:\n" if value is None else dump_mapping({key: value})
             for key, value in meta.items()]
    return f"---\n{''.join(lines)}---\n{body.strip()}\n\n{HUMAN_HEADING}\n\n{_REVIEW_HINT}\n"


def _note_body(body: str, fr_id: str) -> str:
    """The PR body as a vault note: the FR as a wiki-link, the agent's review named so."""
    body = _AGENT_REVIEW.sub(AGENT_HEADING, body)
    link = f"Feature request: [[{fr_id}]]"
    return _FR_LINK.sub(link, body, count=1) if _FR_LINK.search(body) else f"{link}\n\n{body}"


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
        meta = load_frontmatter(split_note(_read_text(path)))
    except ForgeError:
        if strict:
            raise
        return None
    except (yaml.YAMLError, RecursionError) as exc:
        if strict:
            raise ForgeError(f"the frontmatter of {path} is not valid YAML ({exc}); "
                             "fix the note") from exc
        return None
    return dict(meta) if isinstance(meta, dict) and "pr_for" in meta else None


def _human_span(text: str) -> tuple[int, int] | None:
    """Where the human's section's text is: after `## Your review` (or, in a note from
    before the sections were named apart, the last `## Review`) up to the next `## `
    heading or opus's next log entry."""
    heads = list(re.finditer(rf"^{re.escape(HUMAN_HEADING)}[ \t]*\n", text, re.MULTILINE))
    if not heads:
        heads = list(re.finditer(r"^## Review[ \t]*\n", text, re.MULTILINE))
    if not heads:
        return None
    start = heads[-1].end()
    ends = [m.start() for m in re.finditer(r"^## ", text[start:], re.MULTILINE)]
    ends += [m.start() for m in _OPUS_ENTRY.finditer(text[start:])]
    return start, start + min(ends, default=len(text) - start)


def human_review(text: str) -> str:
    """What the human wrote in their review section (the hint comment left out)."""
    span = _human_span(text)
    return "" if span is None else _HTML_COMMENT.sub("", text[span[0] : span[1]]).strip()


def _take_human_review(text: str) -> tuple[str, str]:
    """(`text` with the human's section emptied back to the hint, what it held)."""
    span = _human_span(text)
    if span is None:
        return text, ""
    handled = _HTML_COMMENT.sub("", text[span[0] : span[1]]).strip()
    if not handled:
        return text, ""
    return text[: span[0]] + f"\n{_REVIEW_HINT}\n\n" + text[span[1] :].lstrip("\n"), handled


def _state(meta: dict[str, Any]) -> str:
    return str(meta.get("state") or OPEN).strip().lower()


def _reopen(text: str) -> str:
    text = _reset_decision(text)
    end = text.find("\n---", 3) if text.startswith("---") else -1
    if end < 0:
        return text
    head = re.sub(r"^state:.*$", f"state: {OPEN}", text[:end], count=1, flags=re.MULTILINE)
    return head + text[end:]


def _set_state(path: Path, state: str) -> None:
    """The note's `state:` follows the PR (best effort: the decision itself is kept)."""
    from opus.vault.text import edit_note

    try:
        data = path.read_bytes()
        edited = edit_note(data, {"state": state})
        if edited != data:
            _atomic_write(path, edited.decode("utf-8"))
    except (OSError, NoteError, UnicodeDecodeError):
        return


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
    """A temp file named like the vault's own (intake removes one a killed writer left)."""
    return create_temp(path, text.encode("utf-8"))
