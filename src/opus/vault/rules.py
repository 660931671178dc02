"""The vault-wide rules, applied incrementally as the vault index takes in new verdicts.

`checks` states the rules over a whole vault (duplicate ids, dependencies, cycles);
`Rules.apply` re-checks only the notes a change can affect:

- the changed notes themselves;
- every note holding an id the change added or removed (duplicates);
- every note whose `depends_on` names such an id or file stem (dependencies);
- when the planned FRs' graph changed, the planned notes whose cycle changed (the
  cycles are recomputed over the planned FRs only: their number, not the vault's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from opus.domain import FeatureRequest, FRStatus
from opus.vault.checks import (
    Note,
    duplicate_error,
    find_cycles,
    flag_cycle,
    flag_duplicate,
    resolve_names,
    with_dependencies,
)
from opus.vault.names import Names
from opus.vault.note import InvalidNote
from opus.vault.settled import Settled
from opus.vault.verdicts import Base, Final, Verdicts, id_of, walk_key


class Rules:
    """Each FR note's final verdict kept in step with the own verdicts; see the module."""

    def __init__(self, verdicts: Verdicts, names: Names, root: Path) -> None:
        self._verdicts = verdicts
        self._names = names
        self._root = root
        self._planned: dict[str, tuple[str, tuple[str, ...]]] = {}
        """Planned FRs that pass the duplicate and dependency rules: id and dependencies."""
        self._cycles: dict[str, list[str]] = {}
        self.checked = 0
        """Notes whose vault-wide rules were applied again, over the index's life."""

    def planned(self) -> Iterable[str]:
        """The notes of the planned FRs that pass the duplicate and dependency rules."""
        return self._planned.keys()

    def apply(self, read: Mapping[str, Base], gone: set[str]) -> set[Path]:
        """Take in the own verdicts `read` and forget `gone`; re-check what they can
        affect; the paths whose final verdict changed."""
        keys: set[str] = set()
        for rel in gone:
            keys |= self._forget(rel)
        affected: set[str] = set()
        base_of = self._verdicts.base
        for rel, base in read.items():
            old = base_of[self._verdicts.slot(rel)]
            if old is base or old == base:
                continue  # the same verdict (a planned note whose repo is as it was)
            affected.add(rel)
            keys |= self._forget(rel)
            keys |= self._remember(rel, base)
        affected |= self._names.concerned(keys)
        changed = self._recheck(affected, gone)
        for rel in gone:
            self._verdicts.drop(rel)
        return {self._verdicts.path(rel) for rel in changed}

    def _remember(self, rel: str, base: Base) -> set[str]:
        self._verdicts.base[self._verdicts.slot(rel)] = base
        return self._names.change(rel, base, add=True)

    def _forget(self, rel: str) -> set[str]:
        base_of = self._verdicts.base
        slot = self._verdicts.slot(rel)
        base, base_of[slot] = base_of[slot], None
        return set() if base is None else self._names.change(rel, base, add=False)

    def _recheck(self, affected: set[str], gone: set[str]) -> set[str]:
        for rel in gone:
            self._planned.pop(rel, None)
        verdicts = self._verdicts
        staged: dict[str, Final] = {}
        planned_changed = bool(gone)
        for rel in affected:
            base = verdicts.base[verdicts.slot(rel)]
            note = None if base is None or isinstance(base, str) else self._stage(rel, base)
            if note is not None:
                staged[rel] = note
            planned_changed |= self._plan(rel, note)
        self.checked += len(staged)
        if planned_changed:
            for rel in self._new_cycles():
                base = verdicts.base[verdicts.slot(rel)]
                if rel not in staged and base is not None and not isinstance(base, str):
                    staged[rel] = self._stage(rel, base)
        changed = {rel for rel in gone | (affected - set(staged))
                   if verdicts.set_final(rel, None)}
        changed |= {rel for rel, note in staged.items()
                    if verdicts.set_final(rel, _with_cycles(note, self._cycles))}
        return changed

    def _stage(self, rel: str, base: Settled | Note) -> Final:
        """The duplicate and dependency rules (cycles come after, over all planned FRs)."""
        note = self._duplicates(rel, base)
        if isinstance(note, Settled):
            if not note.depends_on:
                return note
            return replace(note, depends_on=resolve_names(note.depends_on,
                                                          self._names.known()))
        return with_dependencies(note, self._names.known())

    def _plan(self, rel: str, note: Final | None) -> bool:
        """Keep `_planned` in step with `note`; True when the planned graph changed."""
        entry = None
        if isinstance(note, FeatureRequest) and note.status is FRStatus.PLANNED:
            entry = (note.id, note.depends_on)
        if self._planned.get(rel) == entry:
            return False
        if entry is None:
            del self._planned[rel]
        else:
            self._planned[rel] = entry
        return True

    def _new_cycles(self) -> list[str]:
        """Recompute the cycles among the planned FRs; the planned notes whose cycle changed."""
        ids = {fr_id for fr_id, _deps in self._planned.values()}
        cycles = find_cycles({fr_id: [d for d in deps if d in ids]
                              for fr_id, deps in self._planned.values()})
        moved = {fr_id for fr_id in set(cycles) | set(self._cycles)
                 if cycles.get(fr_id) != self._cycles.get(fr_id)}
        self._cycles = cycles
        return [rel for rel, (fr_id, _deps) in self._planned.items() if fr_id in moved]

    def _duplicates(self, rel: str, base: Settled | Note) -> Settled | Note:
        fr_id = id_of(base)
        holders = () if fr_id is None else self._names.holders(fr_id.casefold())
        if fr_id is None or len(holders) < 2:
            return base
        path = self._verdicts.path(rel)
        same = [self._verdicts.path(holder) for holder in sorted(holders, key=walk_key)]
        if not isinstance(base, Settled):
            return flag_duplicate(base, {fr_id.casefold(): same}, self._root)
        error = duplicate_error(base.id, path, same, self._root)
        return base if error is None else InvalidNote(path, error, base.id, base.status.value)


def _with_cycles(note: Final, cycles: Mapping[str, list[str]]) -> Final:
    return note if isinstance(note, Settled) else flag_cycle(note, cycles)
