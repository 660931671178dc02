"""What opus did about an open PR, kept in the job's spec: the pure record of reactions.

Each reaction names its kind (`review`, `ci`, `conflict`, `update`, `ready`), what opus did
(`round`, `escalated`, `cleared`, `ready`), the PR head commit that triggered it and the
trigger itself in words (failing check names, conflicted files). The list lives in
`job.spec["reactions"]`, written in the same store update as the state change it causes,
so "has this head already started a round?" survives any restart.

`round_feedback` in the spec is what the next round's coder is told; the executor takes
it (and drops it once the coder's stage is done). Jobs queued by older versions carry it
as `human_feedback`, which is read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

REACTIONS = "reactions"
ROUND_FEEDBACK = "round_feedback"
LEGACY_FEEDBACK = "human_feedback"
KEPT = 50
"""Reactions kept per job: the newest ones decide everything; older ones are history."""

Kind = Literal["review", "ci", "conflict", "update", "ready"]
Action = Literal["round", "escalated", "cleared", "ready"]


@dataclass(frozen=True)
class Reaction:
    """One thing opus did about an open PR, and why."""

    kind: Kind
    action: Action
    sha: str
    """The PR head commit that triggered it ("" when the forge did not say)."""
    trigger: str
    """The cause in words, one line: `test (failure), lint (failure)`, conflicted files."""
    round: int = 0
    """For `round`: the round it started (the job's iteration then + 1)."""
    at: str = ""
    """ISO time it was recorded."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reaction:
        return cls(
            kind=data.get("kind", "review"),
            action=data.get("action", "round"),
            sha=str(data.get("sha") or ""),
            trigger=str(data.get("trigger") or ""),
            round=int(data.get("round") or 0),
            at=str(data.get("at") or ""),
        )


def reactions(spec: Mapping[str, Any]) -> list[Reaction]:
    """The job's reactions, oldest first (unreadable entries skipped)."""
    found = spec.get(REACTIONS)
    if not isinstance(found, list):
        return []
    return [Reaction.from_dict(item) for item in found if isinstance(item, dict)]


def with_reaction(spec: Mapping[str, Any], reaction: Reaction) -> dict[str, Any]:
    """A copy of `spec` with `reaction` appended (the newest `KEPT` kept)."""
    kept = [r.as_dict() for r in reactions(spec)][-(KEPT - 1):]
    return {**spec, REACTIONS: [*kept, reaction.as_dict()]}


def find(spec: Mapping[str, Any], kind: Kind, sha: str, action: Action) -> Reaction | None:
    """The reaction of `kind` and `action` to head `sha`, if one was recorded."""
    for reaction in reactions(spec):
        if (reaction.kind, reaction.action, reaction.sha) == (kind, action, sha):
            return reaction
    return None


def rounds_spent(spec: Mapping[str, Any], kind: Kind) -> int:
    """How many rounds reactions of `kind` started since the job's last `opus retry`
    (which records the rounds it had in `extra_rounds`: a retry grants fresh ones)."""
    since = int(spec.get("extra_rounds", 0))
    return sum(1 for r in reactions(spec)
               if r.kind == kind and r.action == "round" and r.round > since)  # fmt: skip


def last(spec: Mapping[str, Any], kind: Kind) -> Reaction | None:
    """The newest reaction of `kind`."""
    mine = [r for r in reactions(spec) if r.kind == kind]
    return mine[-1] if mine else None


def escalation(spec: Mapping[str, Any], kind: Kind) -> Reaction | None:
    """The escalation of `kind` still standing (not cleared since), if any."""
    latest = last(spec, kind)
    return latest if latest is not None and latest.action == "escalated" else None


def standing(spec: Mapping[str, Any]) -> list[Reaction]:
    """Every escalation not cleared since, one per kind, oldest first."""
    kinds = dict.fromkeys(r.kind for r in reactions(spec))
    found = [escalation(spec, kind) for kind in kinds]
    return [reaction for reaction in found if reaction is not None]


def is_ready(spec: Mapping[str, Any]) -> bool:
    """True while the PR counts as ready to merge (FR `stage: ready`)."""
    latest = last(spec, "ready")
    return latest is not None and latest.action == "ready"


def round_of(spec: Mapping[str, Any], iteration: int) -> Reaction | None:
    """The reaction that started round `iteration`, if a reaction did."""
    for reaction in reversed(reactions(spec)):
        if reaction.action == "round" and reaction.round == iteration:
            return reaction
    return None


def open_round(spec: Mapping[str, Any], delivered: int) -> Reaction | None:
    """The reaction whose round is under way: started after the delivery of round
    `delivered` (the last delivered iteration), if any reaction started one."""
    for reaction in reversed(reactions(spec)):
        if reaction.action == "round":
            return reaction if reaction.round > delivered else None
    return None


GIVEN_BACK: dict[str, str] = {
    "review": "Changes requested",
    "ci": "CI still failing",
    "conflict": "Merge conflict with the base",
    "update": "Merging the moved base failed",
}
"""Kinds whose round, out of rounds, hands the PR back to a person instead of failing
the job (the PR stays open for them), and what the "needs you" says."""
QUIET: frozenset[str] = frozenset({"ci", "conflict", "update"})
"""Kinds whose rounds nobody asked for: their delivery notifies no one."""


def quiet_delivery(spec: Mapping[str, Any]) -> bool:
    """True when the newest round was started by CI or the base (not by a person): its
    delivery tells nobody — a person hears only "ready to merge" or "needs you"."""
    rounds = [r for r in reactions(spec) if r.action == "round"]
    return bool(rounds) and rounds[-1].kind in QUIET


def reason_line(reaction: Reaction) -> str:
    """Why a round ran, for the comment opus posts on the PR after it."""
    sha = reaction.sha[:10] or "the head"
    match reaction.kind:
        case "ci":
            return f"CI failed on {sha}: {reaction.trigger}"
        case "conflict":
            return f"Conflict with the base on {sha}: {reaction.trigger}"
        case "update":
            return f"The base branch moved: {reaction.trigger}"
        case _:
            return reaction.trigger


def pending_feedback(spec: Mapping[str, Any]) -> str | None:
    """What the coder of the next round is told, when a round was asked for."""
    for key in (ROUND_FEEDBACK, LEGACY_FEEDBACK):
        value = spec.get(key)
        if value is not None:
            return str(value)
    return None


def without_feedback(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` once the round's coder has been told."""
    return {k: v for k, v in spec.items() if k not in (ROUND_FEEDBACK, LEGACY_FEEDBACK)}
