"""Which notes a refresh of the vault index reads: the whole folder, or what changed.

`walk_all` reads every note below the features folder (an unchanged file is only
stat'ed) and finds the notes gone since; with `finish_moves` it also repairs the moves
and removes the temp files of note writes a kill cut short. `walk_changed` reads the
paths that changed, where a folder stands for every note below it. Both give the new
own verdicts read and the notes gone; the vault-wide rules come after (`rules`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from opus.vault.interrupted import finish_interrupted_moves
from opus.vault.leftovers import remove_leftovers
from opus.vault.reader import Reader
from opus.vault.scan import features_folder, is_note_path, read_file, relative_note_paths
from opus.vault.verdicts import Base, Verdicts

Read = dict[str, Base]
"""The own verdicts read, by path text (only those that may have changed)."""


class Walker:
    """Finds the notes to read and reads them with a `Reader`; see the module."""

    def __init__(self, verdicts: Verdicts, reader: Reader, *, root: Path,
                 features_dir: Path | str, id_pattern: str) -> None:
        self._verdicts = verdicts
        self._reader = reader
        self._root = root
        self._features_dir = features_dir
        self._id_pattern = id_pattern

    def folder(self) -> Path:
        """The features folder; `NoteError` naming the fix when it is not a folder."""
        return features_folder(self._root, self._features_dir)

    def walk_all(self, features: Path, *, finish_moves: bool) -> tuple[Read, set[str]]:
        """Read every note of `features` (the `folder`); the verdicts read and the notes
        gone."""
        table, reader = self._verdicts.table, self._reader
        walked = bytearray(table.capacity)
        linked: list[str] = []
        leftovers: list[Path] | None = [] if finish_moves else None
        read: Read = {}
        for rel in relative_note_paths(features, leftovers):
            reader.read(rel, read, linked)
            slot = table.slot(rel)
            if slot is not None and slot < len(walked):
                walked[slot] = 1
        gone = {unseen for slot, mark in enumerate(walked)
                if not mark and (unseen := table.rel(slot)) is not None}
        if finish_moves and linked:
            self._finish_moves(linked, read, gone, features)
        if leftovers:
            remove_leftovers(leftovers)
        return read, gone

    def _finish_moves(self, linked: list[str], read: Read, gone: set[str],
                      features: Path) -> None:
        """Finish the moves of the notes with other names: a name removed is gone."""
        path = self._verdicts.path
        removed = finish_interrupted_moves(
            [path(rel) for rel in linked],
            lambda note: read_file(note, self._id_pattern), features)
        for rel in linked:
            if path(rel) in removed:
                read.pop(rel, None)
                if rel in self._verdicts.table:
                    gone.add(rel)

    def walk_changed(self, changed: Iterable[Path]) -> tuple[Read, set[str]]:
        """Read the `changed` paths (created, edited, moved away or deleted); the verdicts
        read and the notes gone. A folder (one created or moved in, or gone) stands for
        every note below it: its subtree is walked, and the notes known below it are
        read again."""
        features = self.folder()
        verdicts = self._verdicts
        present: set[str] = set()  # once each: nested folders may name a note twice
        gone: set[str] = set()
        for path in set(changed):
            rel = verdicts.rel(path)
            if path.name.endswith(".md"):
                if rel is not None:  # else never indexed
                    (present if is_note_path(path, features) else gone).add(rel)
            else:
                below = self._subtree(path, features)
                present |= {rel for rel in below
                            if is_note_path(verdicts.path(rel), features)}
                gone |= below
        gone -= present
        read: Read = {}
        gone |= {rel for rel in present if not self._reader.read(rel, read)}
        table = verdicts.table
        known = (table.rel(slot) for rel in gone if (slot := table.slot(rel)) is not None)
        return read, {rel for rel in known if rel is not None}

    def _subtree(self, folder: Path, features: Path) -> set[str]:
        """The notes below `folder` now, and those known below it before (gone unless
        still there). Costs the index's size: for folder events only."""
        inside = str(folder) + os.sep
        prefix, table = self._verdicts.prefix, self._verdicts.table
        if inside.startswith(prefix):
            below_prefix = inside[len(prefix):]
            below = {rel for rel in table if rel.startswith(below_prefix)}
        else:
            below_prefix = ""
            below = set(table) if prefix.startswith(inside) else set()
        if folder.is_relative_to(features) and not _hidden(folder, features):
            # nothing when it is not a folder (now)
            below.update(below_prefix + rel for rel in relative_note_paths(folder))
        return below


def _hidden(path: Path, features: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(features).parts)
