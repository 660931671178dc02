"""The vault index's per-note bookkeeping, sized for vaults of 50,000 notes and more.

Each note is known by its path relative to the features folder, as text (a `Path` costs
several hundred bytes), and a slot number; its stat key `(mtime_ns, size, inode)`, mtime,
ctime and first sight, and whether its verdict may be stored across restarts, are kept in
arrays by slot (49 bytes a note, not a `Version` object with its tuple, ints and floats).
Callers keep their own columns in lists by the same slots.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Iterator

from opus.vault.scan import Version


class NoteTable:
    """Path text → slot, and each slot's stat key and first sight (see the module)."""

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._rels: list[str | None] = []
        self._free: list[int] = []
        self._mtime_ns = array("q")
        self._size = array("q")
        self._inode = array("Q")
        self._mtime = array("d")
        self._seen = array("d")
        """`time.monotonic()` when each slot's version was first read."""
        self._ctime_ns = array("q")
        self._lasting = bytearray()
        """1 when the slot's verdict may go into the parse cache (`parse_cache`)."""

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, rel: object) -> bool:
        return rel in self._slots

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    @property
    def capacity(self) -> int:
        """One more than the highest slot ever given out (the callers' columns' length)."""
        return len(self._rels)

    def slot(self, rel: str) -> int | None:
        return self._slots.get(rel)

    def rel(self, slot: int) -> str | None:
        """The path text of `slot` (the object stored, so callers can share it)."""
        return self._rels[slot]

    def same(self, slot: int, st: os.stat_result) -> bool:
        """`st` is the version already read at `slot`."""
        return (self._mtime_ns[slot] == st.st_mtime_ns and self._size[slot] == st.st_size
                and self._inode[slot] == st.st_ino)

    def put(self, rel: str, st: os.stat_result, *, lasting: bool) -> int:
        """Record `st` as the version read at `rel` (first seen now), and whether its
        verdict may be stored across restarts; its slot."""
        slot = self._slots.get(rel)
        if slot is None:
            slot = self._free.pop() if self._free else self._grow()
            self._slots[rel] = slot
            self._rels[slot] = rel
        self._mtime_ns[slot] = st.st_mtime_ns
        self._size[slot] = st.st_size
        self._inode[slot] = st.st_ino
        self._mtime[slot] = st.st_mtime
        self._seen[slot] = time.monotonic()
        self._ctime_ns[slot] = st.st_ctime_ns
        self._lasting[slot] = lasting
        return slot

    def drop(self, rel: str) -> int | None:
        """Forget `rel`; the slot it had (free for the next new path), if any."""
        slot = self._slots.pop(rel, None)
        if slot is not None:
            self._rels[slot] = None
            self._free.append(slot)
        return slot

    def lasting(self, slot: int) -> bool:
        return bool(self._lasting[slot])

    def key(self, slot: int) -> tuple[int, int, int, int]:
        """The parse cache's key: `(mtime_ns, size, inode, ctime_ns)`."""
        return (self._mtime_ns[slot], self._size[slot], self._inode[slot],
                self._ctime_ns[slot])

    def version(self, slot: int) -> Version:
        key = (self._mtime_ns[slot], self._size[slot], self._inode[slot])
        return Version(key, self._mtime[slot], self._seen[slot])

    def _grow(self) -> int:
        self._rels.append(None)
        for column in (self._mtime_ns, self._size, self._inode, self._ctime_ns):
            column.append(0)
        self._lasting.append(0)
        for floats in (self._mtime, self._seen):
            floats.append(0.0)
        return len(self._rels) - 1
