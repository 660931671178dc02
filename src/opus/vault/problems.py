"""Notes opus cannot use, recorded where `opus status` finds them without reading the vault.

The daemon's intake writes the current list to `<state_dir>/note-problems.json` whenever
it changes; `opus status` reads it (cheap, whatever the vault's size) and `opus doctor`
and `opus scan` compute it afresh from the notes. Each entry also carries the `sha256`
of the note's bytes when it was reported (`read_reported`), so a restarted daemon does
not log again a problem it reported for the same unchanged note.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
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


def write_problems(
    state_dir: Path, problems: list[NoteProblem], digests: Mapping[str, str] | None = None
) -> None:
    """Replace the recorded list atomically (temp file + rename in `state_dir`);
    `digests`: the reported notes' sha256 by path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    digests = digests or {}
    entries = [{**asdict(p), **({"sha256": digests[p.path]} if p.path in digests else {})}
               for p in sorted(problems)]
    payload = json.dumps(entries, ensure_ascii=False, indent=1)
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
    return [NoteProblem(path=str(item["path"]), reason=str(item["reason"]))
            for item in _entries(state_dir)]


def read_reported(state_dir: Path) -> dict[str, tuple[str, str]]:
    """What the daemon last reported: each note's path → (reason, sha256 of its bytes)."""
    return {str(item["path"]): (str(item["reason"]), str(item["sha256"]))
            for item in _entries(state_dir) if "sha256" in item}


def _entries(state_dir: Path) -> list[dict[str, object]]:
    try:
        raw = json.loads((state_dir / PROBLEMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(raw, list):
        return []
    return [item for item in raw
            if isinstance(item, dict) and "path" in item and "reason" in item]


def problems_of(notes: Iterable[InvalidNote], vault_root: Path) -> list[NoteProblem]:
    """The problems among invalid FR notes: those that asked to run (or say `invalid`)."""
    return sorted(
        NoteProblem(path=vault_relative(note.path, vault_root), reason=note.error)
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


def vault_relative(path: Path, root: Path) -> str:
    """`path` as shown to a person: relative to the vault when inside it."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
