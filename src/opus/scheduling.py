"""Which planned FRs may be enqueued now, and in which order (pure: no I/O, no clock).

An FR is ready when its status is `planned` and every FR it depends on is `done`.
Ready FRs come most urgent first: priority rank, then age (older first), then id.
Age is a timestamp the caller supplies per FR id (intake passes the note's mtime, or
its `created` key when it has one), so this module never touches the file system; an
FR with no known age sorts after those with one.
"""

from __future__ import annotations

import math
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opus.domain import FeatureRequest, FRStatus


@dataclass(frozen=True)
class Blocked:
    """A planned FR that must wait, and why."""

    fr: FeatureRequest
    waiting_on: tuple[str, ...]
    """The dependency ids that are not `done` yet (or, in a cycle, the cycle's ids)."""
    reason: str
    """For a person: e.g. "waits for FR-045 (in-progress), FR-050 (no such note)"."""
    held: Mapping[str, str] = field(default_factory=dict)
    """The dependencies that get no nearer to `done` until a person acts, with their
    status: draft, failed, cancelled, invalid, or no such note."""


@dataclass(frozen=True)
class Schedule:
    ready: tuple[FeatureRequest, ...]
    """Planned FRs whose dependencies are all done, most urgent first."""
    blocked: tuple[Blocked, ...]
    """Planned FRs still waiting, in the same order."""


def dependency_id(ref: str) -> str:
    """`FR-045`, `[[FR-045]]` or `[[FR-045|alias]]` → `FR-045`."""
    ref = ref.strip()
    if ref.startswith("[[") and ref.endswith("]]"):
        ref = ref[2:-2].split("|", 1)[0].strip()
    return ref


def schedule(
    frs: Iterable[FeatureRequest],
    statuses: Mapping[str, FRStatus],
    *,
    ages: Mapping[str, float] | None = None,
) -> Schedule:
    """Split the planned FRs of a scan into ready and blocked, each most urgent first.

    `statuses` maps every known note's id to its status (the FRs in `frs` count too when
    missing from it); `ages` maps FR ids to a timestamp, smaller = older.
    """
    planned = [fr for fr in frs if fr.status is FRStatus.PLANNED]
    # A lookup, not a copy: `statuses` may be the whole vault's (a live index view).
    known = ChainMap(statuses, {fr.id: fr.status for fr in planned})  # type: ignore[arg-type]
    cycles = _cycle_members({fr.id: _deps(fr) for fr in planned})
    ready: list[FeatureRequest] = []
    blocked: list[Blocked] = []
    for fr in sorted(planned, key=lambda fr: urgency(fr, ages or {})):
        waiting = _blocker(fr, known, cycles.get(fr.id))
        if waiting is None:
            ready.append(fr)
        else:
            blocked.append(waiting)
    return Schedule(tuple(ready), tuple(blocked))


def urgency(fr: FeatureRequest, ages: Mapping[str, float]) -> tuple[int, float, str]:
    """The sort key of an FR: priority rank, then age, then id."""
    return (fr.priority.rank, ages.get(fr.id, math.inf), fr.id)


def _deps(fr: FeatureRequest) -> tuple[str, ...]:
    return tuple(dependency_id(ref) for ref in fr.depends_on)


def _blocker(
    fr: FeatureRequest, known: Mapping[str, FRStatus], cycle: tuple[str, ...] | None
) -> Blocked | None:
    if cycle is not None:
        path = " → ".join((*cycle, cycle[0]))
        return Blocked(fr, cycle, f"dependency cycle {path}: remove one of these depends_on")
    waiting = tuple(dep for dep in _deps(fr) if known.get(dep) is not FRStatus.DONE)
    if not waiting:
        return None
    described = ", ".join(f"{dep} ({_status_text(known.get(dep))})" for dep in waiting)
    held = {dep: _status_text(known.get(dep)) for dep in waiting
            if known.get(dep) not in _ON_THE_WAY}
    return Blocked(fr, waiting, f"waits for {described}", held)


_ON_THE_WAY = frozenset({FRStatus.PLANNED, FRStatus.IN_PROGRESS, FRStatus.REVIEW})
"""Statuses an FR leaves for `done` without a person doing more than review."""


def _status_text(status: FRStatus | None) -> str:
    return "no such note" if status is None else status.value


def _cycle_members(graph: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """For every FR on a dependency cycle among `graph`, the cycle it is on."""
    found: dict[str, tuple[str, ...]] = {}
    for start in sorted(graph):
        if start in found:
            continue
        cycle = _cycle_from(start, graph)
        if cycle is not None:
            found.update(dict.fromkeys(cycle, cycle))
    return found


def _cycle_from(start: str, graph: Mapping[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """The cycle through `start`, if following dependencies can lead back to it."""
    stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for dep in graph.get(node, ()):
            if dep == start:
                return path
            if dep not in seen and dep in graph:
                seen.add(dep)
                stack.append((dep, (*path, dep)))
    return None
