"""Two small maps of the vault index, shaped for a large vault."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TypeVar

V = TypeVar("V")


class Holders:
    """Name → the notes holding it (by their path text). Most names have one holder, kept
    without a set (a set per note of a large vault is megabytes)."""

    def __init__(self) -> None:
        self._one: dict[str, str] = {}
        self._many: dict[str, set[str]] = {}

    def get(self, name: str) -> tuple[str, ...]:
        one = self._one.get(name)
        if one is not None:
            return (one,)
        return tuple(self._many.get(name, ()))

    def keys(self) -> set[str]:
        return self._one.keys() | self._many.keys()

    def single_holders(self) -> Iterator[str]:
        """The note of every name held by one note only."""
        return iter(self._one.values())

    def add(self, name: str, note: str) -> None:
        many = self._many.get(name)
        if many is not None:
            many.add(note)
            return
        one = self._one.get(name)
        if one is None or one == note:
            self._one[name] = note
            return
        del self._one[name]
        self._many[name] = {one, note}

    def discard(self, name: str, note: str) -> None:
        if self._one.get(name) == note:
            del self._one[name]
            return
        many = self._many.get(name)
        if many is None:
            return
        many.discard(note)
        if len(many) == 1:
            self._one[name] = many.pop()
        if not many:
            del self._many[name]


class View(Mapping[str, V]):
    """A read-only mapping computed by `lookup` on demand over `keys` (no copy of the
    index: a lookup costs one entry, not the vault)."""

    def __init__(self, lookup: Callable[[str], V | None],
                 keys: Callable[[], Collection[str]]) -> None:
        self._lookup = lookup
        self._keys = keys

    def __getitem__(self, key: str) -> V:
        found = self._lookup(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())
