"""Where an FR enters and leaves: notes in a vault, parsed, validated and written back.

`scan_vault` reads every FR note; `write_fields` writes opus's keys back without
touching anything else; `init_vault` creates a new vault. Each name is imported from its
module on first use, so a command that needs one module (`opus status` reads
`opus.vault.problems`) does not load the others (`init` brings in the settings model).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opus.vault.checks import ScanResult
    from opus.vault.init import init_targets, init_vault, render_config
    from opus.vault.note import InvalidNote, parse_note
    from opus.vault.scan import NoteCache, scan_vault
    from opus.vault.text import OPUS_KEYS
    from opus.vault.write import write_fields

_HOMES = {
    "OPUS_KEYS": "text",
    "InvalidNote": "note",
    "NoteCache": "scan",
    "ScanResult": "checks",
    "init_targets": "init",
    "init_vault": "init",
    "parse_note": "note",
    "render_config": "init",
    "scan_vault": "scan",
    "write_fields": "write",
}

__all__ = [
    "OPUS_KEYS",
    "InvalidNote",
    "NoteCache",
    "ScanResult",
    "init_targets",
    "init_vault",
    "parse_note",
    "render_config",
    "scan_vault",
    "write_fields",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'opus.vault' has no attribute {name!r}")
    return getattr(import_module(f"opus.vault.{home}"), name)
