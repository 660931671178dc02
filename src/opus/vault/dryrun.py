"""`opus scan`: what opus would do with every note under the features folder.

A dry run for a vault a person already lives in: it reads the notes, applies exactly the
rules intake applies (which notes are FRs, validation, duplicates, dependencies), and
writes nothing — no note, no database, no state file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from opus.config import Settings
from opus.domain import FRStatus
from opus.scheduling import schedule
from opus.vault.scan import scan_vault


@dataclass(frozen=True, order=True)
class ScanLine:
    """One note and what opus would do with it."""

    path: str
    """Relative to the vault root."""
    action: str
    """`queue`, `wait`, `invalid`, `report`, `keep` (an FR left as it is) or `ignore`."""
    detail: str
    fr: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def scan_plan(settings: Settings) -> list[ScanLine]:
    """Every note under the features folder with opus's verdict; raises `NoteError`
    when the vault has no features folder."""
    root = settings.vault_path
    scan = scan_vault(
        root,
        default_repo=settings.default_repo,
        features_dir=settings.vault.features_dir,
        id_pattern=settings.vault.id_pattern,
    )
    plan = schedule(scan.planned, scan.statuses)
    lines = [ScanLine(_rel(fr.path, root), "queue", "planned: would be queued", fr.id)
             for fr in plan.ready]
    lines += [ScanLine(_rel(b.fr.path, root), "wait", f"planned: {b.reason}", b.fr.id)
              for b in plan.blocked]
    for fr in scan.valid:
        if fr.status is not FRStatus.PLANNED:
            lines.append(ScanLine(_rel(fr.path, root), "keep", f"FR, {fr.status.value}", fr.id))
    for note in scan.invalid:
        rel = _rel(note.path, root)
        if note.should_flag:
            lines.append(ScanLine(rel, "invalid", f"would be marked invalid: {note.error}",
                                  note.fr_id))
        elif note.is_problem:
            lines.append(ScanLine(rel, "report", f"cannot be used (reported, not edited): "
                                  f"{note.error}", note.fr_id))
        else:
            lines.append(ScanLine(rel, "keep", f"FR, {note.status or 'unreadable'}, not "
                                  f"planned (if planned: {note.error})", note.fr_id))
    lines += [ScanLine(_rel(o.path, root), "ignore", f"left alone: {o.why}") for o in scan.others]
    return sorted(lines)


def render_scan(lines: Sequence[ScanLine]) -> str:
    """One line per note, then a count per action."""
    if not lines:
        return "no notes under the features folder"
    width = min(60, max(len(line.path) for line in lines))
    out = [f"{line.path:<{width}}  {line.action:<7}  {line.detail}" for line in lines]
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.action] = counts.get(line.action, 0) + 1
    out.append("")
    out.append(", ".join(f"{n} {action}" for action, n in sorted(counts.items())) +
               " (nothing was written)")
    return "\n".join(out)


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
