"""Notes opus cannot use, recorded where `opus status` finds them without reading the vault.

The daemon's intake writes the current list to `<state_dir>/note-problems.json` whenever
it changes; `opus status` reads it (cheap, whatever the vault's size) and `opus doctor`
and `opus scan` compute it afresh from the notes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opus.config import Settings
    from opus.vault.note import InvalidNote

PROBLEMS_FILE = "note-problems.json"


@dataclass(frozen=True, order=True)
class NoteProblem:
    """A planned (or FR-shaped) note opus cannot use, and why."""

    path: str
    """The note's path relative to the vault root."""
    reason: str
    """One line naming the problem and its fix."""


def write_problems(state_dir: Path, problems: list[NoteProblem]) -> None:
    """Replace the recorded list atomically (temp file + rename in `state_dir`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps([asdict(p) for p in sorted(problems)], ensure_ascii=False, indent=1)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".note-problems.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.replace(tmp, state_dir / PROBLEMS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_problems(state_dir: Path) -> list[NoteProblem]:
    """The list the daemon last recorded; empty when none was recorded or it is unreadable."""
    try:
        raw = json.loads((state_dir / PROBLEMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(raw, list):
        return []
    return [
        NoteProblem(path=str(item["path"]), reason=str(item["reason"]))
        for item in raw
        if isinstance(item, dict) and "path" in item and "reason" in item
    ]


def problems_of(notes: Iterable[InvalidNote], vault_root: Path) -> list[NoteProblem]:
    """The problems among invalid FR notes: those that asked to run (or say `invalid`)."""
    return sorted(
        NoteProblem(path=_relative(note.path, vault_root), reason=note.error)
        for note in notes
        if note.is_problem
    )


def scan_problems(settings: Settings) -> list[NoteProblem]:
    """The notes opus cannot use, computed afresh from the vault (writes nothing).

    For `opus doctor` (each one a FAIL) and `opus scan`. A vault without its features
    folder is one problem naming the folder.
    """
    from opus.errors import NoteError
    from opus.vault.scan import scan_vault

    root = settings.vault_path
    try:
        scan = scan_vault(
            root,
            default_repo=settings.default_repo,
            features_dir=settings.vault.features_dir,
            id_pattern=settings.vault.id_pattern,
        )
    except NoteError as exc:
        return [NoteProblem(path=str(settings.vault.features_dir), reason=str(exc))]
    return problems_of(scan.invalid, root)


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
