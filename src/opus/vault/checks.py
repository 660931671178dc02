"""Vault-wide rules over parsed notes (pure): duplicate ids, dependencies, cycles."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from opus.domain import FeatureRequest, FRStatus
from opus.vault.note import InvalidNote, OtherNote

Note = FeatureRequest | InvalidNote


@dataclass(frozen=True)
class ScanResult:
    """Every note of a vault: the usable FRs, the ones that need fixing, and the rest."""

    valid: tuple[FeatureRequest, ...]
    invalid: tuple[InvalidNote, ...]
    others: tuple[OtherNote, ...] = ()
    """Notes that are not FRs: opus never writes, moves or flags them."""

    @property
    def planned(self) -> tuple[FeatureRequest, ...]:
        """The FRs that are candidates for work (`status: planned`)."""
        return tuple(fr for fr in self.valid if fr.status is FRStatus.PLANNED)

    @property
    def statuses(self) -> dict[str, FRStatus]:
        """Status of every valid FR by id (a `done` one satisfies its dependants)."""
        return {fr.id: fr.status for fr in self.valid}


def check_vault(
    notes: Sequence[Note], vault_root: Path, *, others: Sequence[OtherNote] = ()
) -> ScanResult:
    """Apply the vault-wide rules, in order: duplicates, dependencies, cycles."""
    notes = _flag_duplicates(notes, vault_root)
    notes = _resolve_dependencies(notes)
    notes = _flag_cycles(notes)
    valid = tuple(n for n in notes if isinstance(n, FeatureRequest))
    invalid = tuple(n for n in notes if isinstance(n, InvalidNote))
    return ScanResult(valid, invalid, tuple(others))


def note_id(note: Note) -> str | None:
    """The FR id a note holds (an invalid note's, when it could be read)."""
    return note.id if isinstance(note, FeatureRequest) else note.fr_id


def _invalid(note: Note, error: str) -> InvalidNote:
    if isinstance(note, InvalidNote):
        return replace(note, error=f"{note.error}; {error}")
    return InvalidNote(note.path, error, note.id, note.status.value)


def _flag_duplicates(notes: Sequence[Note], vault_root: Path) -> list[Note]:
    # Ids compare case-insensitively: they become lower-case branch names.
    paths: dict[str, list[Path]] = {}
    for note in notes:
        fr_id = note_id(note)
        if fr_id is not None:
            paths.setdefault(fr_id.casefold(), []).append(note.path)
    return [flag_duplicate(note, paths, vault_root) for note in notes]


def flag_duplicate(note: Note, paths: Mapping[str, Sequence[Path]], vault_root: Path) -> Note:
    """`note` made invalid when other notes hold its id; `paths` maps each casefolded id
    to the paths holding it, in walk order."""
    fr_id = note_id(note)
    same = paths.get(fr_id.casefold(), []) if fr_id else []
    error = duplicate_error(fr_id, note.path, same, vault_root)
    return note if error is None else _invalid(note, error)


def duplicate_error(
    fr_id: str | None, path: Path, holders: Sequence[Path], vault_root: Path
) -> str | None:
    """What is wrong with the note at `path` when `holders` (in walk order) hold its id."""
    others = [_relative(p, vault_root) for p in holders if p != path]
    if not others:
        return None
    return f"duplicate id {fr_id}: also used by {', '.join(others)}; give each note its own id"


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _resolve_dependencies(notes: Sequence[Note]) -> list[Note]:
    """Map each dependency to an id (wiki-links may name a file stem); flag unknown ones.

    Only planned notes are held to this: a draft may point at notes not written yet.
    """
    known: dict[str, str] = {}
    for note in notes:
        fr_id = note_id(note)
        if fr_id is not None:
            known.setdefault(note.path.stem.casefold(), fr_id)
    for note in notes:  # a real id wins over a file stem that looks the same
        fr_id = note_id(note)
        if fr_id is not None:
            known[fr_id.casefold()] = fr_id
    return [with_dependencies(note, known) for note in notes]


def with_dependencies(note: Note, known: Mapping[str, str]) -> Note:
    """`note` with each dependency mapped to an id through `known` (casefolded id or file
    stem → id); a planned note naming one that no note has is made invalid."""
    if isinstance(note, InvalidNote) or not note.depends_on:
        return note
    resolved = resolve_names(note.depends_on, known)
    missing = [dep for dep in note.depends_on if dep.casefold() not in known]
    if missing and note.status is FRStatus.PLANNED:
        return _invalid(
            note, f"depends_on names {', '.join(missing)}, which no note in the vault has; "
            "fix the id or remove it from depends_on",
        )
    return replace(note, depends_on=resolved)


def resolve_names(depends_on: Iterable[str], known: Mapping[str, str]) -> tuple[str, ...]:
    """Each dependency as an id through `known`; a name no note has stays as written."""
    return tuple(known.get(dep.casefold(), dep) for dep in depends_on)


def _flag_cycles(notes: Sequence[Note]) -> list[Note]:
    cycles = find_cycles(planned_edges(notes))
    return [flag_cycle(note, cycles) for note in notes]


def planned_edges(notes: Iterable[Note]) -> dict[str, list[str]]:
    """The dependency graph among the planned FRs (the only notes a cycle can stop)."""
    planned = {
        n.id: n for n in notes if isinstance(n, FeatureRequest) and n.status is FRStatus.PLANNED
    }
    return {fr_id: [d for d in fr.depends_on if d in planned] for fr_id, fr in planned.items()}


def flag_cycle(note: Note, cycles: Mapping[str, list[str]]) -> Note:
    """`note` made invalid when it is on a dependency cycle (`find_cycles`)."""
    if not isinstance(note, FeatureRequest) or note.id not in cycles:
        return note
    return _invalid(
        note,
        f"dependency cycle {' → '.join(cycles[note.id])}: remove one of these depends_on entries",
    )


def find_cycles(edges: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """For every node on a cycle, one shortest cycle through it: [a, b, ..., a]."""
    cycles: dict[str, list[str]] = {}
    for component in _components(edges):
        for node in sorted(component):
            path = _shortest_cycle(node, edges, component)
            if path is not None:
                cycles[node] = path
    return cycles


def _shortest_cycle(
    start: str, edges: Mapping[str, Sequence[str]], within: set[str]
) -> list[str] | None:
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                return [*reversed(chain), start]
            if nxt in within and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def _components(edges: Mapping[str, Sequence[str]]) -> Iterable[set[str]]:
    """Strongly connected components (iterative Tarjan), self-loops included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    yield _pop_component(node, stack, on_stack)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])


def _pop_component(node: str, stack: list[str], on_stack: set[str]) -> set[str]:
    component: set[str] = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == node:
            return component
