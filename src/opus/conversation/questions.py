"""Questions for a person, and the undecided ones written in an FR's body (pure).

An FR written like a design note says what is still undecided in two shapes
(designs/conversation.md):

1. An **Open Questions** section (any heading level; `pipeline.question_headings`): each
   question is a sub-heading, or a top-level list item when the section has no
   sub-headings. Its list items are its options, a `Recommendation:` line its
   recommendation, and a `Decision:` line the decision. A question whose `Decision:` is
   empty (or `TBD`, `?`, `pending`, `-`) is undecided; one without a `Decision:` line, or
   with a filled one, is not.
2. A **Decisions** section (`pipeline.decision_headings`): every `Pending: <text>` line
   (or list item) is an undecided question; `Pending:` alone takes the list items under
   it. `Pending: none` is nothing.

Labels may carry markdown emphasis (`**Decision:**`, `*Recommendation*:`). Fenced code
blocks are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

QUESTION_HEADINGS = ("open questions", "unresolved questions")
DECISION_HEADINGS = ("decisions",)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_LABEL = re.compile(r"^[\s>*_`]*(?P<label>[A-Za-z][A-Za-z ]*?)[\s*_`]*:[\s*_`]*(?P<rest>.*)$")
_EMPTY_DECISIONS = {"", "tbd", "tbc", "?", "??", "-", "—", "pending", "open", "undecided", "todo"}
_NOTHING_PENDING = {"none", "nothing", "-", "—", "n/a"}
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Question:
    """One question for a person, with what the asker offers to help decide."""

    question: str
    options: tuple[str, ...] = ()
    recommendation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "options": list(self.options),
                "recommendation": self.recommendation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        options = data.get("options") or ()
        recommendation = data.get("recommendation")
        return cls(str(data.get("question", "")).strip(),
                   tuple(str(option) for option in options),
                   str(recommendation) if recommendation else None)


@dataclass
class _Section:
    level: int
    title: str
    lines: list[str] = field(default_factory=list)


def find_open_questions(
    body: str,
    *,
    question_headings: Iterable[str] = QUESTION_HEADINGS,
    decision_headings: Iterable[str] = DECISION_HEADINGS,
) -> list[Question]:
    """The undecided questions of an FR body, in the order written (see the module doc)."""
    asked = {_norm(h) for h in question_headings}
    decided = {_norm(h) for h in decision_headings}
    found: list[Question] = []
    for section in _sections(body):
        title = _norm(section.title)
        if title in asked:
            found += _undecided(section)
        pending = _pending_title(section.title)
        if title in decided or pending is not None:
            found += _pending(section.lines, pending)
    return found


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[*_`:#]", " ", text).split()).lower()


def _pending_title(title: str) -> str | None:
    """`## Decisions — Pending: a; b` carries its pending items in the heading itself."""
    match = re.match(r"(?i)^\W*decisions\W+pending\s*:\s*(.*)$", title.strip())
    return match.group(1).strip() if match else None


def _lines(body: str) -> Iterable[str]:
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line.rstrip()


def _sections(body: str) -> list[_Section]:
    """Every heading with the lines up to the next heading of the same or a higher level."""
    sections: list[_Section] = []
    open_: list[_Section] = []
    for line in _lines(body):
        match = _HEADING.match(line)
        if match:
            level = len(match.group(1))
            open_ = [s for s in open_ if s.level < level]
            for section in open_:
                section.lines.append(line)
            section = _Section(level, match.group(2))
            sections.append(section)
            open_.append(section)
            continue
        for section in open_:
            section.lines.append(line)
    return sections


def _undecided(section: _Section) -> list[Question]:
    blocks = _question_blocks(section.lines)
    questions = []
    for title, lines in blocks:
        decision = _label_value(lines, "decision")
        if decision is not None and _norm(decision) in _EMPTY_DECISIONS:
            questions.append(_question(title, lines))
    return questions


def _question_blocks(lines: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Sub-headings as questions; without any, the top-level list items."""
    blocks: list[tuple[str, list[str]]] = []
    headed = any(_HEADING.match(line) for line in lines)
    for line in lines:
        heading = _HEADING.match(line) if headed else None
        item = _ITEM.match(line) if not headed else None
        if heading:
            blocks.append((heading.group(2), []))
        elif item and not item.group(1) and not _is_label(item.group(2)):
            blocks.append((item.group(2), []))
        elif blocks:
            blocks[-1][1].append(line)
    return blocks


def _is_label(text: str) -> bool:
    match = _LABEL.match(text)
    return match is not None and _norm(match.group("label")) in ("decision", "recommendation")


def _label_value(lines: Iterable[str], label: str) -> str | None:
    """The text after `label:` on the first line that has it (emphasis removed)."""
    for line in lines:
        item = _ITEM.match(line)
        match = _LABEL.match(item.group(2) if item else line)
        if match and _norm(match.group("label")) == label:
            return _clean(match.group("rest"))
    return None


def _clean(text: str) -> str:
    return re.sub(r"\*\*|__", "", text).strip().strip("*_` ").strip()


def _question(title: str, lines: Sequence[str]) -> Question:
    options = []
    for line in lines:
        item = _ITEM.match(line)
        if item and not _is_label(item.group(2)):
            options.append(_clean(item.group(2)))
    return Question(_title(title), tuple(options), _label_value(lines, "recommendation") or None)


def _title(text: str) -> str:
    """A heading or item as a question: numbering and emphasis dropped."""
    text = re.sub(r"^(?:Q?\d+[.):]\s*)", "", text.strip())
    return _clean(text)


def _pending(lines: Sequence[str], in_title: str | None) -> list[Question]:
    found: list[Question] = []
    if in_title:
        found += [Question(part.strip()) for part in re.split(r";", in_title)
                  if _norm(part) not in _NOTHING_PENDING and part.strip()]
    collecting = False
    for line in lines:
        item = _ITEM.match(line)
        text = item.group(2) if item else line
        match = _LABEL.match(text)
        if match and _norm(match.group("label")) == "pending":
            rest = _clean(match.group("rest"))
            collecting = not rest
            if rest and _norm(rest) not in _NOTHING_PENDING:
                found.append(Question(rest))
        elif collecting and item:
            found.append(Question(_clean(item.group(2))))
        elif collecting and line.strip():
            collecting = False
    return found


def assumption_lines(questions: Iterable[Question]) -> list[str]:
    """`recommend`: each question taken as decided by its recommendation."""
    return [
        f"{q.question} → {q.recommendation or 'no recommendation given: the planner decides'}"
        for q in questions
    ]
