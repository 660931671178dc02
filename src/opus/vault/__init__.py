"""Where an FR enters and leaves: notes in a vault, parsed, validated and written back.

`scan_vault` reads every FR note; `write_fields` writes opus's keys back without
touching anything else; `init_vault` creates a new vault.
"""

from opus.vault.checks import ScanResult
from opus.vault.init import init_targets, init_vault, render_config
from opus.vault.note import InvalidNote, parse_note
from opus.vault.scan import NoteCache, scan_vault
from opus.vault.text import OPUS_KEYS
from opus.vault.write import write_fields

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
