"""The notes opus cannot use, as the intake reports them: logged once, listed for status.

Each problem is logged once, until its reason changes. opus's own `status: invalid`
write-back does not count as a change, even where it moves a size or a byte offset the
reason names: the bytes opus wrote are remembered (`flagged`) until the note changes. The list goes
to `<state_dir>/note-problems.json` (`opus.vault.problems`) with each note's sha256, so a
restarted daemon does not log again what it reported for the same unchanged note; a note
edited while the daemon was down, and still unusable, is reported again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from opus.config import Settings
from opus.vault import InvalidNote
from opus.vault.index import Entry
from opus.vault.problems import (
    NoteProblem,
    problems_of,
    read_reported,
    vault_relative,
    write_problems,
)

log = logging.getLogger(__name__)

_Stat = tuple[int, int, int]


class ProblemLog:
    """Keeps `note-problems.json` current and logs each problem once (see the module)."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        """The daemon's settings as they are now (a reload may move the vault)."""
        self._notes: dict[Path, InvalidNote] = {}
        self._logged: dict[Path, str] = {}
        self._written: tuple[list[NoteProblem], dict[str, str]] | None = None
        self._before: dict[str, tuple[str, str]] | None = None
        """What an earlier run reported (path → reason, sha256), read on first use."""
        self._digests: dict[Path, tuple[_Stat, str]] = {}
        """Each problem note's sha256, and the stat it was read at."""
        self._own: dict[Path, str] = {}
        """Notes as opus flagged them: the sha256 of the bytes it wrote."""

    def __repr__(self) -> str:
        return f"ProblemLog(problems={len(self._notes)}, logged={len(self._logged)})"

    def restart(self) -> None:
        """A full walk follows: the list is rebuilt from the notes it sees."""
        self._notes = {}

    def changed(self, path: Path, *, gone: bool) -> None:
        """`path` changed: listed again once it settles; a note that is gone is forgotten."""
        self._notes.pop(path, None)
        if gone:
            self._logged.pop(path, None)
            self._digests.pop(path, None)
            self._own.pop(path, None)

    def record(self, seen: Mapping[Path, Entry | None]) -> None:
        """Take in the settled notes' verdicts; log the new problems; save the list."""
        if self._before is None:  # before this run's first save replaces it
            self._before = read_reported(self.settings.state_dir)
        for path, note in seen.items():
            if not isinstance(note, InvalidNote) or not note.is_problem:
                self._notes.pop(path, None)
                self._logged.pop(path, None)
                self._digests.pop(path, None)
                self._own.pop(path, None)
                continue
            self._notes[path] = note
            if self._news(path, note) and not self._reported_before(note):
                log.warning("%s cannot be used: %s", self._relative(path), note.error)
            self._logged[path] = note.error
        self._save()

    def flagged(self, path: Path) -> None:
        """opus wrote `status: invalid` into the note: what it reads next is the problem
        already logged."""
        self._digest(path)
        known = self._digests.get(path)
        if known is not None:
            self._own[path] = known[1]

    def _news(self, path: Path, note: InvalidNote) -> bool:
        """Not yet logged in this run: a new reason, on bytes opus did not write itself."""
        self._digest(path)
        known = self._digests.get(path)
        ours = known is not None and self._own.get(path) == known[1]
        if not ours:
            self._own.pop(path, None)
        logged = self._logged.get(path)
        return logged != note.error and not (ours and logged is not None)

    @property
    def settings(self) -> Settings:
        return self._settings()

    def _save(self) -> None:
        problems = problems_of(self._notes.values(), self.settings.vault_path)
        digests = {self._relative(path): known[1] for path in self._notes
                   if (known := self._digests.get(path)) is not None}
        if (problems, digests) == self._written:
            return
        try:
            write_problems(self.settings.state_dir, problems, digests)
        except OSError as exc:
            log.error("could not record the notes opus cannot use: %s", exc)
            return
        self._written = (problems, digests)

    def _reported_before(self, note: InvalidNote) -> bool:
        """An earlier run logged this reason for the note's present bytes."""
        before = (self._before or {}).pop(self._relative(note.path), None)
        known = self._digests.get(note.path)
        return known is not None and before == (note.error, known[1])

    def _digest(self, path: Path) -> None:
        """Keep the sha256 of the note's bytes (read again only when its stat changed)."""
        try:
            info = path.stat()
            stat = (info.st_mtime_ns, info.st_size, info.st_ino)
            known = self._digests.get(path)
            if known is None or known[0] != stat:
                self._digests[path] = (stat, hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            self._digests.pop(path, None)

    def _relative(self, path: Path) -> str:
        return vault_relative(path, self.settings.vault_path)
