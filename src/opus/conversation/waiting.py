"""What the registry holds while a job waits for a person, and the moves in and out.

A waiting job is in state `waiting_input` with no worker and no lease; its `spec` says
why (designs/conversation.md, "The registry"):

    spec.waiting = {kind: "questions" | "plan", asked_by: "planner" | "coder" | "fr" |
                    "opus", stage, iteration, round, since (ISO UTC),
                    questions: [{question, options, recommendation}],
                    note: path of the question or plan note once written, or null,
                    reminded: bool, problem: what is wrong with the last answer, or null}
    spec.conversation = [{asked_by, stage, iteration, round, answered_at,
                          questions: [{question, options, recommendation, answer}]}]
    spec.plan_review = {revision, decision: "approve" | "changes", comments}

The worker writes `waiting` (`start_waiting`); the intake host writes the note and records
its path; an answer (the note, or `opus answer`) moves the round into `conversation` and
the job back to `queued` (`answer`), where the next claim resumes it at the stage that
asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from opus.conversation.questions import Question
from opus.domain import Job, JobState
from opus.errors import UsageError
from opus.seams import Clock, JobStore

WAITING = "waiting"
CONVERSATION = "conversation"
PLAN_REVIEW = "plan_review"
Kind = Literal["questions", "plan"]
Decision = Literal["approve", "changes", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "changes", "reject")


_ASKERS = {"fr": "the FR", "opus": "opus"}


@dataclass(frozen=True)
class Waiting:
    """Why a job waits (`spec.waiting`)."""

    kind: Kind
    asked_by: str
    stage: str
    iteration: int
    round: int
    """Which ask of the job this is (1, 2, …); for a plan, its revision. Names the note."""
    since: str
    questions: tuple[Question, ...] = ()
    note: str | None = None
    reminded: bool = False
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "asked_by": self.asked_by, "stage": self.stage,
            "iteration": self.iteration, "round": self.round, "since": self.since,
            "questions": [q.as_dict() for q in self.questions], "note": self.note,
            "reminded": self.reminded, "problem": self.problem,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Waiting:
        kind: Kind = "plan" if data.get("kind") == "plan" else "questions"
        return cls(
            kind=kind, asked_by=str(data.get("asked_by", "")),
            stage=str(data.get("stage", "plan")), iteration=int(data.get("iteration", 0)),
            round=int(data.get("round", 1)), since=str(data.get("since", "")),
            questions=tuple(Question.from_dict(q) for q in data.get("questions") or ()),
            note=data.get("note"), reminded=bool(data.get("reminded")),
            problem=data.get("problem"),
        )

    @property
    def asker(self) -> str:
        """Who asked, as a sentence says it: the planner, the coder, the FR (its open
        questions), opus (a plan to approve)."""
        return _ASKERS.get(self.asked_by, f"the {self.asked_by}")

    def since_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.since)
        except ValueError:
            return None


@dataclass(frozen=True)
class Answered:
    """One answered round (`spec.conversation[i]`)."""

    asked_by: str
    stage: str
    round: int
    questions: tuple[Question, ...]
    answers: tuple[str, ...]
    answered_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        pairs = [{**q.as_dict(), "answer": a}
                 for q, a in zip(self.questions, self.answers, strict=True)]
        return {"asked_by": self.asked_by, "stage": self.stage, "round": self.round,
                "answered_at": self.answered_at, "questions": pairs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Answered:
        items = list(data.get("questions") or ())
        return cls(
            asked_by=str(data.get("asked_by", "")), stage=str(data.get("stage", "")),
            round=int(data.get("round", 0)),
            questions=tuple(Question.from_dict(item) for item in items),
            answers=tuple(str(item.get("answer", "")) for item in items),
            answered_at=str(data.get("answered_at", "")),
        )


def waiting_of(job: Job) -> Waiting | None:
    """Why `job` waits, when it is `waiting_input`."""
    data = job.spec.get(WAITING)
    if job.state is not JobState.WAITING_INPUT or not isinstance(data, Mapping):
        return None
    return Waiting.from_dict(data)


def conversation_of(job: Job) -> list[Answered]:
    """Every answered round of `job`, oldest first."""
    return [Answered.from_dict(item) for item in job.spec.get(CONVERSATION) or ()]


def next_round(job: Job) -> int:
    return len(conversation_of(job)) + 1


def start_waiting(store: JobStore, job: Job, waiting: Waiting) -> Job:
    """running → waiting_input (the worker gives up its lease and slot)."""
    spec = {**job.spec, WAITING: waiting.as_dict()}
    moved = store.transition(job.id, JobState.WAITING_INPUT, spec=spec)
    what = (f"{len(waiting.questions)} question(s) from {waiting.asker}"
            if waiting.kind == "questions" else f"plan revision {waiting.round} to approve")
    store.add_event(job.id, "waiting_input", f"waiting for a person: {what}")
    return moved


def record_note(store: JobStore, job: Job, waiting: Waiting) -> Job:
    """Keep the note's path, reminder and problem in `spec.waiting` (only while waiting)."""
    spec = {**job.spec, WAITING: waiting.as_dict()}
    return store.update(job.id, spec=spec, if_state=JobState.WAITING_INPUT)


def answer(store: JobStore, job: Job, answers: Sequence[str], clock: Clock) -> Job:
    """Record the answers to the questions `job` waits on and queue it again.

    Raises `UsageError` naming the questions left without an answer.
    """
    waiting = _waiting_for(job, "questions")
    missing = missing_answers(waiting, answers)
    if missing:
        raise UsageError(f"{job.fr_id}: no answer to {missing}; answer every question")
    done = Answered(waiting.asked_by, waiting.stage, waiting.round, waiting.questions,
                    tuple(a.strip() for a in answers), clock.now().isoformat(timespec="seconds"))
    rounds = [*job.spec.get(CONVERSATION, []), done.as_dict()]
    spec = {k: v for k, v in job.spec.items() if k != WAITING}
    moved = store.transition(job.id, JobState.QUEUED, spec={**spec, CONVERSATION: rounds})
    store.add_event(job.id, "answered", f"{len(answers)} answer(s); resuming at {waiting.stage}")
    return moved


def missing_answers(waiting: Waiting, answers: Sequence[str]) -> str:
    """'question 2 (…)', or '' when every question has an answer."""
    missing = [
        f"question {n} ({q.question})"
        for n, q in enumerate(waiting.questions, 1)
        if n > len(answers) or not answers[n - 1].strip()
    ]
    return ", ".join(missing)


def decide_plan(store: JobStore, job: Job, decision: str, comments: str) -> Job:
    """Apply a person's decision on the plan `job` waits on.

    approve → queued (coding starts); changes → queued with the comments (a new plan
    revision); reject → cancelled. Raises `UsageError` for another word.
    """
    waiting = _waiting_for(job, "plan")
    word = decision.strip().lower()
    spec = {k: v for k, v in job.spec.items() if k != WAITING}
    if word == "reject":
        reason = "plan rejected" + (f": {comments.strip()}" if comments.strip() else "")
        store.add_event(job.id, "plan_rejected", reason)
        return store.transition(job.id, JobState.CANCELLED, error=reason, spec=spec)
    if word not in ("approve", "changes"):
        raise UsageError(
            f"`decision: {decision}` is not one of {', '.join(DECISIONS)}; write one of them"
        )
    if word == "changes" and not comments.strip():
        raise UsageError("`decision: changes` needs your comments under \"## Comments\"")
    review = {"revision": waiting.iteration, "decision": word, "comments": comments.strip()}
    store.add_event(job.id, f"plan_{word}", comments.strip() or f"plan revision {waiting.round}")
    return store.transition(job.id, JobState.QUEUED, spec={**spec, PLAN_REVIEW: review})


def _waiting_for(job: Job, kind: Kind) -> Waiting:
    waiting = waiting_of(job)
    if waiting is None:
        raise UsageError(f"{job.fr_id} is {job.state.value}; it waits for no answer")
    if waiting.kind != kind:
        other = "a plan decision" if waiting.kind == "plan" else "answers to its questions"
        raise UsageError(f"{job.fr_id} waits for {other}, see {waiting.note or 'its note'}")
    return waiting


def with_reminder(waiting: Waiting) -> Waiting:
    return replace(waiting, reminded=True)


def render_conversation(rounds: Sequence[Answered]) -> str:
    """The answered questions as markdown, for the agents' first message and the PR body."""
    lines: list[str] = []
    for done in rounds:
        for question, reply in zip(done.questions, done.answers, strict=True):
            lines.append(f"- **Q ({done.asked_by}):** {question.question}")
            if question.options:
                lines.append(f"  Options: {'; '.join(question.options)}")
            lines.append(f"  **A:** {reply}")
    return "\n".join(lines)
