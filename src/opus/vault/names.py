"""The names the vault index knows notes by, and what a name means.

A note goes by its id and by its file stem (casefolded, as ids become lower-case branch
names); a `depends_on` entry may use either. `Names` keeps which notes hold each id and
each stem and which notes name each name in their dependencies, so a change re-checks
the notes it can affect; `resolve` gives the id a dependency's name means, as a full
scan (`checks.resolve_names`) assigns it; `valid` the note of the valid FR with an id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opus.domain import FeatureRequest
from opus.vault.maps import Holders, View
from opus.vault.settled import Settled
from opus.vault.verdicts import Base, Verdicts, id_of, stem, walk_key


class Names:
    """Id and stem → their notes, name → the notes depending on it; see the module."""

    def __init__(self, verdicts: Verdicts) -> None:
        self._verdicts = verdicts
        self._ids = Holders()
        self._stems = Holders()
        """Only the stems that differ from their note's id (an id is looked up first)."""
        self._dependents = Holders()

    def change(self, rel: str, base: Base, *, add: bool) -> set[str]:
        """Add the note at `rel` (its own verdict `base`) to the maps of its id, stem and
        dependencies, or take it from them; the names whose holders changed."""
        fr_id = id_of(base)
        if fr_id is None:
            return set()
        id_key, stem_key = fr_id.casefold(), stem(rel).casefold()
        change = Holders.add if add else Holders.discard
        change(self._ids, id_key, rel)
        if stem_key != id_key:  # the same name is found by its id first
            change(self._stems, stem_key, rel)
        if isinstance(base, FeatureRequest | Settled):
            for dep in base.depends_on:
                change(self._dependents, dep.casefold(), rel)
        return {id_key, stem_key}

    def holders(self, key: str) -> tuple[str, ...]:
        """The notes holding the (casefolded) id `key`."""
        return self._ids.get(key)

    def concerned(self, keys: Iterable[str]) -> set[str]:
        """The notes a change of these names' holders can affect: those holding them as
        an id, and those naming them in their dependencies."""
        notes: set[str] = set()
        for key in keys:
            notes.update(self._ids.get(key), self._dependents.get(key))
        return notes

    def known(self) -> Mapping[str, str]:
        """Every name (casefolded) → the id it means (a live view)."""
        return View(self.resolve, lambda: self._ids.keys() | self._stems.keys())

    def resolve(self, name: str) -> str | None:
        """The id a dependency `name` (casefolded) means: a note's id (the last in walk
        order wins, as a full scan assigns them), else the first note whose file stem it is."""
        holders = self._ids.get(name)
        if holders:
            rel = max(holders, key=walk_key)
        else:
            stems = self._stems.get(name)
            if not stems:
                return None
            rel = min(stems, key=walk_key)
        verdicts = self._verdicts
        return id_of(verdicts.base[verdicts.slot(rel)])

    def valid(self, fr_id: str) -> str | None:
        """The note of the valid FR with this id: the only holder of the id (two holders
        of an id are both invalid), when its verdict is valid under that very id."""
        holders = self._ids.get(fr_id.casefold())
        if len(holders) != 1:
            return None
        final = self._verdicts.final[self._verdicts.slot(holders[0])]
        valid = isinstance(final, FeatureRequest | Settled) and final.id == fr_id
        return holders[0] if valid else None

    def valid_ids(self) -> list[str]:
        """Every valid FR's id (costs the vault's size: for iterating a view)."""
        verdicts = self._verdicts
        finals = (verdicts.final[verdicts.slot(rel)] for rel in self._ids.single_holders())
        return [final.id for final in finals if isinstance(final, FeatureRequest | Settled)]
