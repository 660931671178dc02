"""What the coder of a CI round is told, pure: each failing check as a developer would
read it — name and conclusion, the check's title, summary and text, its annotations
(`path:line: message`) and the end of the failed job's log.

Everything is capped so a chatty CI cannot fill the coder's context: each field, the
annotations per check, the log tail, and the whole report.
"""

from __future__ import annotations

from opus.seams import Check, CIReport

FIELD_CHARS = 2_000
ANNOTATIONS = 30
LOG_CHARS = 6_000
REPORT_CHARS = 24_000


def ci_report_text(report: CIReport) -> str:
    """The round's feedback for the coder."""
    failing = report.failing
    names = ", ".join(check.name for check in failing)
    lines = [
        f"The pull request's CI failed on commit {report.sha[:10]}: {names}.",
        "Fix the cause in the code (not the CI configuration) so these checks pass.",
    ]
    for check in failing:
        lines += ["", *check_section(check)]
    text = "\n".join(lines)
    if len(text) > REPORT_CHARS:
        text = text[:REPORT_CHARS] + "\n[... report cut ...]"
    return text


def check_section(check: Check) -> list[str]:
    """One failing check, as lines."""
    lines = [f"## {check.name}: {check.conclusion}"]
    if check.url:
        lines.append(f"Details: {check.url}")
    for label, value in (("Title", check.title), ("Summary", check.summary),
                         ("Text", check.text)):  # fmt: skip
        if value.strip():
            lines.append(f"{label}: {_cap(value.strip(), FIELD_CHARS)}")
    if check.annotations:
        lines.append("Annotations:")
        lines += [f"- {note}" for note in check.annotations[:ANNOTATIONS]]
        if len(check.annotations) > ANNOTATIONS:
            lines.append(f"- ... {len(check.annotations) - ANNOTATIONS} more")
    if check.log_tail.strip():
        tail = check.log_tail.strip()
        if len(tail) > LOG_CHARS:
            tail = "[...]\n" + tail[-LOG_CHARS:]
        lines += ["Log (tail):", "```", tail, "```"]
    return lines


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"
