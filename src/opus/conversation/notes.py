"""The question note (`Q-<FR>.md`) and the plan note (`PLAN-<FR>.md`) as text (pure).

Both are opus's notes next to the FR note; the person edits them in the vault. Their
frontmatter has no `id` and no `job`, so the vault scan never takes them for FRs.

Question note: frontmatter `for: "[[FR-12]]"`, `kind: questions`, `round`, `status: open`
(the person sets `answered`); one `## N. <question>` heading per question with its options,
the recommendation and an empty `**Answer:**` line; the answer is the text after
`Answer:` up to the next heading.

Plan note: `for`, `kind: plan`, `revision`, `decision:` (the person writes approve,
changes or reject); the summary, the steps with their postconditions, the files the plan
expects to touch, the estimated cost, and a `## Comments` section read on `changes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from opus.conversation.waiting import Answered, Waiting, render_conversation
from opus.errors import NoteError
from opus.vault.text import split_note

_NUMBERED = re.compile(r"^##\s+(\d+)[.)]\s")
_ANY_H2 = re.compile(r"^##\s")
_ANSWER = re.compile(r"^[\s*_]*answer[\s*_]*:[\s*_]*(.*)$", re.IGNORECASE)
_COMMENTS = re.compile(r"^##\s+comments\s*$", re.IGNORECASE)
# A path: folders, then a name of two or more characters and an extension ("e.g" is not).
_PATHS = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]{2,}\.[A-Za-z0-9]{1,8})(?![\w/])")


def note_name(kind: str, fr_id: str) -> str:
    return f"{'PLAN' if kind == 'plan' else 'Q'}-{fr_id}.md"


@dataclass(frozen=True)
class NoteState:
    """What a person wrote into a question or plan note."""

    fr: str
    kind: str
    round: int
    status: str
    answers: tuple[str, ...] = ()
    decision: str = ""
    comments: str = ""


def _front(fr_id: str, fields: Mapping[str, object]) -> str:
    lines = [f'for: "[[{fr_id}]]"'] + [
        f"{key}: {'' if value is None else value}".rstrip() for key, value in fields.items()
    ]
    return "---\n" + "\n".join(lines) + "\n---\n"


def render_questions(
    fr_id: str, title: str, waiting: Waiting, earlier: Sequence[Answered] = ()
) -> str:
    """A new question note for `waiting` (earlier answered rounds kept at the end)."""
    who = "The feature request leaves these questions open" if waiting.asked_by == "fr" \
        else f"The {waiting.asked_by} asks"
    parts = [
        _front(fr_id, {"kind": "questions", "round": waiting.round, "status": "open",
                       "asked_by": waiting.asked_by, "asked": waiting.since}),
        f"# Questions on [[{fr_id}]]: {title}\n",
        f"{who} (at stage `{waiting.stage}`). Write each answer after `Answer:` under "
        f"its question, then set `status: answered` above (or run `opus answer {fr_id}`). "
        "The job resumes within a second; nothing is spent while it waits.\n",
    ]
    for number, question in enumerate(waiting.questions, 1):
        block = [f"## {number}. {_one_line(question.question)}\n"]
        if question.options:
            block.append("Options:\n" + "".join(f"- {o}\n" for o in question.options))
        if question.recommendation:
            block.append(f"Recommendation: {question.recommendation}\n")
        block.append("**Answer:** \n")
        parts.append("\n".join(block))
    if earlier:
        parts.append("## Earlier answers\n\n" + render_conversation(earlier) + "\n")
    return "\n".join(parts)


def render_plan(
    fr_id: str,
    title: str,
    waiting: Waiting,
    plan: Mapping[str, Any],
    cost_lines: Sequence[str],
) -> str:
    """A plan note for the plan revision `waiting` names."""
    steps = []
    for number, step in enumerate(plan.get("steps") or [], 1):
        steps.append(f"{number}. **{step.get('title', '')}**\n"
                     f"   Done when: {step.get('postcondition', '')}")
    files = expected_files(plan)
    parts = [
        _front(fr_id, {"kind": "plan", "revision": waiting.round, "decision": None}),
        f"# Plan for [[{fr_id}]]: {title}\n",
        "Set `decision:` above to `approve` (opus codes it), `changes` (write what to change "
        "under Comments; opus plans again) or `reject` (the job is cancelled).\n",
        "## Summary\n\n" + str(plan.get("summary", "")).strip() + "\n",
        "## Steps\n\n" + "\n".join(steps) + "\n",
        "## Files it expects to touch\n\n"
        + ("".join(f"- `{name}`\n" for name in files) or "- (none named by the plan)\n"),
        "## Estimated cost\n\n" + "".join(f"- {line}\n" for line in cost_lines),
    ]
    assumed = plan.get("assumptions") or []
    if assumed:
        parts.append("## Assumptions\n\n" + "".join(f"- {a}\n" for a in assumed))
    parts.append("## Comments\n\n")
    return "\n".join(parts)


def expected_files(plan: Mapping[str, Any]) -> list[str]:
    """The paths the plan's text names (the planner is asked to name each step's files)."""
    text = " ".join(
        [str(plan.get("summary", ""))]
        + [f"{s.get('title', '')} {s.get('postcondition', '')}" for s in plan.get("steps") or []]
    )
    seen: list[str] = []
    for match in _PATHS.finditer(text):
        path = match.group(1)
        if path not in seen and not re.fullmatch(r"[\d.]+", path):
            seen.append(path)
    return seen


def read_state(text: str) -> NoteState:
    """Parse a question or plan note; `NoteError` says what is unreadable."""
    note = split_note(text)
    try:
        meta = yaml.safe_load(note.frontmatter) if note.opening is not None else None
    except yaml.YAMLError as exc:
        raise NoteError(f"the frontmatter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise NoteError("the note has no frontmatter mapping (for, kind, round, status)")
    lines = note.body.splitlines()
    decision = meta.get("decision")
    return NoteState(
        fr=_link_target(meta.get("for")),
        kind=str(meta.get("kind") or ""),
        round=_int(meta.get("round", meta.get("revision"))),
        status=str(meta.get("status") or "").strip().lower(),
        answers=_answers(lines),
        decision="" if decision is None else str(decision).strip(),
        comments=_comments(lines),
    )


def plan_reply(texts: Sequence[str]) -> tuple[str, str]:
    """A plan decision given as `opus answer --text` takes it (`approve`, `reject`,
    `changes: <comments>`): the decision and the comments."""
    word, _, comments = " ".join(texts).partition(":")
    return word.strip(), comments.strip()


def _link_target(value: object) -> str:
    text = str(value[0][0] if isinstance(value, list) and value and isinstance(value[0], list)
               else value or "")
    return text.strip().strip("[]").split("|")[0].strip()


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _answers(lines: Sequence[str]) -> tuple[str, ...]:
    """The text after `Answer:` under each numbered question, in question order."""
    found: dict[int, list[str]] = {}
    current: int | None = None
    collecting = False
    for line in lines:
        numbered = _NUMBERED.match(line)
        if numbered:
            current, collecting = int(numbered.group(1)), False
            found.setdefault(current, [])
            continue
        if _ANY_H2.match(line):
            current, collecting = None, False
            continue
        answer = _ANSWER.match(line)
        if current is not None and answer and not collecting:
            collecting = True
            found[current].append(answer.group(1))
        elif collecting and current is not None:
            found[current].append(line)
    if not found:
        return ()
    return tuple("\n".join(found.get(n, [])).strip() for n in range(1, max(found) + 1))


def _comments(lines: Sequence[str]) -> str:
    out: list[str] = []
    inside = False
    for line in lines:
        if _COMMENTS.match(line):
            inside = True
            continue
        if inside and _ANY_H2.match(line):
            break
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def with_answers(text: str, answers: Sequence[str]) -> str:
    """The question note with `answers` written after each `Answer:` (for `opus answer`)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    current: int | None = None
    for line in lines:
        numbered = _NUMBERED.match(line)
        if numbered:
            current = int(numbered.group(1))
        elif _ANY_H2.match(line):
            current = None
        if current is not None and _ANSWER.match(line) and current <= len(answers):
            out.append(f"**Answer:** {answers[current - 1].strip()}\n")
            continue
        out.append(line)
    return "".join(out)


def _one_line(text: str) -> str:
    return " ".join(text.split())
