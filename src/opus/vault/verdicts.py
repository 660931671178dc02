"""The vault index's per-note bookkeeping: each note's verdicts, by its table slot.

A note is known by its path as text relative to the features folder and a slot number
(`NoteTable`, with its stat key). By the same slot the index keeps the note's own
verdict (`Base`: the per-note rules and its repo) and, for an FR note, its verdict after
the vault-wide rules (`Final`); for a planned note, also its parse (its repo is asked
again at every full walk). What each verdict holds of which note: `opus.vault.index`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opus.domain import FRStatus
from opus.vault.checks import Note, note_id
from opus.vault.note import ParsedNote
from opus.vault.settled import Settled
from opus.vault.table import NoteTable

JOB_STATUSES = frozenset({FRStatus.PLANNED, FRStatus.IN_PROGRESS})
"""The statuses whose full record (body included) the index keeps: a note in them makes
or updates a job. Another status becomes one only by an edit, which is read again."""


@dataclass(frozen=True, slots=True)
class FRState:
    """What intake's mirror needs of a valid FR: its id, status, `job:` and path."""

    id: str
    status: FRStatus
    job: int | None
    path: Path


Base = str | Settled | Note
"""A note's own verdict: for a note that is not an FR, the reason (`OtherNote.why`)."""
Final = Settled | Note
"""An FR note's verdict after the vault-wide rules."""
Entry = Note | FRState
"""An FR note as intake works on it (`VaultIndex.entry`)."""


class Verdicts:
    """Every note's slot, own verdict and final verdict; see the module."""

    def __init__(self, features: Path) -> None:
        self.features = features
        self.prefix = str(features) + os.sep
        self.table = NoteTable()
        self.base: list[Base | None] = []
        """By the table's slots: each note's own verdict (per-note rules and its repo)."""
        self.final: list[Final | None] = []
        """By the table's slots: each FR note's verdict after the vault-wide rules."""
        self.parsed: dict[str, ParsedNote] = {}
        """The parse of each planned note: its repo is asked again at every full walk."""
        self.frs = 0
        """How many notes have a final verdict (FR notes, valid or not)."""
        self.changes = 0
        """Notes recorded or forgotten, over the index's life."""

    def slot(self, rel: str) -> int:
        """The slot of a note the table holds."""
        slot = self.table.slot(rel)
        assert slot is not None, rel
        return slot

    def rel(self, path: Path) -> str | None:
        """The path text of `path` (None: not below the features folder)."""
        text = str(path)
        return text[len(self.prefix):] if text.startswith(self.prefix) else None

    def path(self, rel: str) -> Path:
        return self.features / rel

    def store(self, rel: str, st: os.stat_result, *, lasting: bool) -> str:
        """Record the version read at `rel`; the path text stored (shared by every map)."""
        slot = self.table.put(rel, st, lasting=lasting)
        while len(self.base) < self.table.capacity:
            self.base.append(None)
            self.final.append(None)
        self.changes += 1
        rel = self.table.rel(slot) or rel
        self.parsed.pop(rel, None)
        return rel

    def set_final(self, rel: str, note: Final | None) -> bool:
        """Give `rel` its verdict after the vault-wide rules; True when it changed."""
        slot = self.slot(rel)
        old = self.final[slot]
        if old == note:
            return False
        self.final[slot] = note
        self.frs += (note is not None) - (old is not None)
        return True

    def drop(self, rel: str) -> None:
        """Forget the note at `rel` (its slot is free for the next new path)."""
        self.changes += 1
        slot = self.table.drop(rel)
        if slot is not None:
            self.base[slot] = self.final[slot] = None
        self.parsed.pop(rel, None)


def id_of(base: Base | None) -> str | None:
    """The id a note's own verdict holds (None: not an FR, or no id)."""
    if base is None or isinstance(base, str):
        return None
    return base.id if isinstance(base, Settled) else note_id(base)


def stem(rel: str) -> str:
    """The file stem of a note's path text (every note's name ends in `.md`)."""
    return rel.rsplit(os.sep, 1)[-1].removesuffix(".md")


def walk_key(rel: str) -> tuple[tuple[int, str], ...]:
    """`os.walk`'s sorted top-down order: a folder's files before its subfolders."""
    parts = rel.split(os.sep)
    return (*((1, part) for part in parts[:-1]), (0, parts[-1]))
