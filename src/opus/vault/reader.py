"""One note's own verdict, from its file, as the vault index reads it.

A note is stat'ed; it is parsed only when its stat key changed (or, on the first walk,
taken from the parse cache's hints when the key is the one stored). Its own verdict is
what the index keeps of it: the reason for a note that is not an FR, the full record of
an FR in flight or an invalid note, `Settled` for a valid FR out of flight. A planned
note's repo is asked again even when the file is unchanged: git has a say in it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from opus.domain import FeatureRequest, FRStatus
from opus.git import is_repo
from opus.vault.checks import Note, with_dependencies
from opus.vault.note import InvalidNote, OtherNote, ParsedNote, Verdict
from opus.vault.parse_cache import RACY_S, Hints, settled_before
from opus.vault.scan import read_file, usable
from opus.vault.settled import Settled
from opus.vault.verdicts import JOB_STATUSES, Base, Verdicts


class Reader:
    """Reads notes into `Verdicts`; see the module."""

    def __init__(self, verdicts: Verdicts, *, root: Path, default_repo: Path | None,
                 id_pattern: str) -> None:
        self._verdicts = verdicts
        self._root = root
        self._default_repo = default_repo
        self._id_pattern = id_pattern
        self._repos: dict[Path, bool] = {}
        self.misses = 0
        """Files parsed, over the index's life (an unchanged file is only stat'ed)."""
        self.cached = 0
        """Notes taken from the parse cache's file instead of parsed."""
        self.racy_s = RACY_S
        """A note changed less than this before it was read is not stored (`parse_cache`)."""
        self.hints: Hints | None = None
        """The cache file's verdicts, during the first walk only."""

    def forget_repos(self) -> None:
        """A repo may have appeared or gone: ask git again."""
        self._repos.clear()

    def read(self, rel: str, read: dict[str, Base], linked: list[str] | None = None) -> bool:
        """Stat the note at `rel`; parse it when its stat key changed, and put its new
        verdict in `read` (also a planned note's, whose repo is asked again); with
        `linked`, add `rel` to it when the file has other names. False when the file is
        gone."""
        verdicts = self._verdicts
        full = verdicts.prefix + rel
        try:
            st = os.stat(full)
        except FileNotFoundError:
            return False
        if linked is not None and st.st_nlink > 1:
            linked.append(rel)
        table = verdicts.table
        slot = table.slot(rel)
        if slot is not None and table.same(slot, st):
            parsed = verdicts.parsed.get(rel)
            if parsed is not None:  # unchanged, but git has a say in it
                read[table.rel(slot) or rel] = self.usable(parsed)
            return True
        brief = None if self.hints is None or slot is not None else self.hints.take(rel, st)
        if brief is not None:
            self.cached += 1
            read[verdicts.store(rel, st, lasting=True)] = brief
            return True
        self.misses += 1
        read_ns = time.time_ns()  # after the stat: a change from now on changes its key
        verdict = read_file(Path(full), self._id_pattern)
        if verdict is None:
            return False
        rel = verdicts.store(rel, st, lasting=settled_before(st, read_ns, self.racy_s))
        if isinstance(verdict, ParsedNote) and verdict.fr.status is FRStatus.PLANNED:
            verdicts.parsed[rel] = verdict
        read[rel] = self._own(verdict)
        return True

    def _own(self, verdict: Verdict) -> Base:
        if isinstance(verdict, OtherNote):
            return sys.intern(verdict.why)  # a handful of reasons, shared by every note
        if isinstance(verdict, InvalidNote):
            return verdict
        return self.usable(verdict)

    def usable(self, parsed: ParsedNote) -> Settled | Note:
        """A parsed FR's own verdict, its repo checked: `Settled` out of flight."""
        note = usable(parsed, vault_root=self._root, default_repo=self._default_repo,
                      is_repo=self._is_repo)
        if isinstance(note, FeatureRequest) and note.status not in JOB_STATUSES:
            return Settled.of(note)
        return note

    def full(self, rel: str, known: Mapping[str, str]) -> Note | None:
        """A settled FR's full record, read again from its file, without its body (as
        every FR out of flight), its dependencies resolved by `known`; None if the file
        is gone or no longer an FR."""
        verdict = read_file(self._verdicts.path(rel), self._id_pattern)
        if isinstance(verdict, InvalidNote):
            return verdict
        if not isinstance(verdict, ParsedNote):
            return None
        if verdict.fr.status not in JOB_STATUSES:
            verdict = replace(verdict, fr=replace(verdict.fr, body=""))
        note = usable(verdict, vault_root=self._root, default_repo=self._default_repo,
                      is_repo=self._is_repo)
        return with_dependencies(note, known)

    def _is_repo(self, path: Path) -> bool:
        if path not in self._repos:
            self._repos[path] = is_repo(path)
        return self._repos[path]
