"""Pure: a forge's checks JSON → `Check` records, and what a commit's checks add up to.

GitHub reports two kinds on a commit: check runs (GitHub Actions and other apps; `status`
queued → in_progress → completed, then a `conclusion`) and commit statuses (older
integrations; `state` pending/success/failure/error) — opus reads both. Gitea reports
commit statuses (`status` pending/success/error/failure/warning, plus skipped in newer
versions). Job logs come as text with ANSI colours and a timestamp on every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from opus.seams import Check, CheckState

GREEN = frozenset({"success", "neutral", "skipped", "warning"})
"""Conclusions that do not fail a PR (Gitea's `warning` shows yellow but passes)."""
PENDING = frozenset({"pending", "queued", "in_progress", "waiting", "requested", "expected"})

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ", re.MULTILINE)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _state(word: str) -> Literal["pending", "success", "failure"]:
    if word in PENDING:
        return "pending"
    return "success" if word in GREEN else "failure"


def check_from_run(item: Mapping[str, Any]) -> Check:
    """A GitHub check run: pending until `completed`, then by its `conclusion`."""
    status = str(item.get("status") or "queued")
    conclusion = str(item.get("conclusion") or status)
    output = _mapping(item.get("output"))
    return Check(
        name=str(item.get("name") or "check"),
        state="pending" if status != "completed" else _state(conclusion),
        conclusion=conclusion,
        title=str(output.get("title") or ""),
        summary=str(output.get("summary") or ""),
        text=str(output.get("text") or ""),
        url=str(item.get("details_url") or item.get("html_url") or ""),
    )


def check_from_status(item: Mapping[str, Any], *, key: str = "state") -> Check:
    """A commit status (GitHub: `state`; Gitea names the same field `status`)."""
    word = str(item.get(key) or "pending")
    return Check(
        name=str(item.get("context") or "status"),
        state=_state(word),
        conclusion=word,
        summary=str(item.get("description") or ""),
        url=str(item.get("target_url") or ""),
    )


def overall(checks: Iterable[Check]) -> CheckState:
    """Failure beats pending beats success; no checks at all is `none`."""
    states = {check.state for check in checks}
    if not states:
        return "none"
    if "failure" in states:
        return "failure"
    return "pending" if "pending" in states else "success"


def annotation_line(item: Mapping[str, Any]) -> str:
    """`path:line: message` for one GitHub check-run annotation."""
    path = str(item.get("path") or "?")
    line = item.get("start_line")
    message = " ".join(str(item.get("message") or item.get("title") or "").split())
    return f"{path}:{line}: {message}" if line else f"{path}: {message}"


def log_tail(raw: bytes, max_lines: int = 150) -> str:
    """The last `max_lines` lines of a job log, ANSI codes and line timestamps removed."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    text = _STAMP.sub("", _ANSI.sub("", text))
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines[-max_lines:])


def actions_job_id(item: Mapping[str, Any]) -> int | None:
    """The GitHub Actions job behind a check run, or None for other apps' runs.

    An Actions check run's `details_url` is `.../actions/runs/<run>/job/<job>`; the job
    id is also the check run's id, which is the fallback.
    """
    if _mapping(item.get("app")).get("slug") != "github-actions":
        return None
    found = re.search(r"/job/(\d+)", str(item.get("details_url") or ""))
    if found:
        return int(found[1])
    ident = item.get("id")
    return int(ident) if isinstance(ident, int) else None
