"""The vault index's side of its parse cache (`parse_cache`: the file and its format).

On the index's first walk the reader takes a note whose stat key is the one stored from
the file's hints instead of parsing it; `save` writes back the briefs the index keeps
(a note that is not an FR by its reason, a valid FR out of flight as `Settled`), read
long enough after the note's last change, when enough notes were read or went since the
file last held what the index knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from opus.vault.parse_cache import Entry, ParseCache
from opus.vault.reader import Reader
from opus.vault.scan import UNREADABLE
from opus.vault.settled import Settled
from opus.vault.verdicts import Verdicts


class IndexCache:
    """One index's cache file: its hints for the first walk, and its writes."""

    def __init__(self, file: Path, *, scope: dict[str, str], verdicts: Verdicts,
                 reader: Reader) -> None:
        self._file = ParseCache(file, scope=scope)
        self._verdicts = verdicts
        self._reader = reader
        self._loaded = False
        self._saved = 0
        """`Verdicts.changes` when the file last held what the index knows (offset, after
        the first walk, by how far the file was from it)."""

    def begin_walk(self) -> None:
        """Before a walk of the whole vault: for the index's first, give the reader the
        file's verdicts."""
        if not self._loaded and not self._verdicts.table:
            self._reader.hints, self._loaded = self._file.load(), True

    def end_walk(self) -> None:
        """After a walk: drop the file's verdicts, and count how far the file is from
        what the index knows (the notes not taken from it, the entries not used)."""
        hints, self._reader.hints = self._reader.hints, None
        if hints is not None:
            unsaved = len(self._verdicts.table) + len(hints) - 2 * hints.used
            self._saved = self._verdicts.changes - unsaved

    def save(self, *, least: int = 1) -> int | None:
        """Write what the index knows of each note to the file, when at least `least`
        notes were read or gone since the file last held it; how many notes were stored
        (None: not written)."""
        if self._verdicts.changes - self._saved < least:
            return None
        count = self._file.save(self._briefs())
        if count is not None:
            self._saved = self._verdicts.changes
        return count

    def _briefs(self) -> Iterator[Entry]:
        """The notes whose verdict may be stored: a brief one (not an FR, or a settled FR)
        read long enough after the note's last change (`parse_cache`)."""
        verdicts = self._verdicts
        table = verdicts.table
        for rel in table:
            slot = verdicts.slot(rel)
            base = verdicts.base[slot]
            if not table.lasting(slot):
                continue
            if isinstance(base, Settled) or (
                    isinstance(base, str) and not base.startswith(UNREADABLE)):
                yield rel, table.key(slot), base
