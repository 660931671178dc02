"""Writing opus's keys back into a note: atomic, surgical, and never over a user's edit."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from opus.domain import FOLDER_FOR_STATUS, FRStatus
from opus.errors import NoteError
from opus.vault.scan import FEATURES_DIR
from opus.vault.text import OPUS_KEYS, edit_note, render_scalar

MAX_ATTEMPTS = 20
RETRY_PAUSE_S = 0.005
MAX_NAME_TRIES = 1000


def write_fields(
    path: Path, fields: Mapping[str, object | None], *, move: bool, vault_root: Path
) -> Path:
    """Set (or, with None, remove) opus's frontmatter keys in the note at `path`.

    Only `status`, `job`, `stage`, `branch`, `pr`, `updated` and `error` may be written.
    The edit is re-applied onto the newest content until the file stays unchanged from
    our read to our rename, so an edit the user saves meanwhile is kept. With `move`
    and a new `status`, the note then moves into that status's folder. Returns where
    the note now is. Raises `NoteError` when the note is gone or cannot be edited.
    """
    rendered = _render(fields)
    for attempt in range(MAX_ATTEMPTS):
        before = _read(path)
        after = edit_note(before, rendered)
        if after == before or replace_if_unchanged(path, before, after):
            break
        # The user is saving right now; let the editor finish before reading again.
        time.sleep(RETRY_PAUSE_S * (attempt + 1))
    else:
        raise NoteError(f"{path} kept changing while opus tried to update it; it will retry")
    status = fields.get("status")
    if move and status is not None:
        return move_to_status_folder(path, _status(status), vault_root)
    return path


def _render(fields: Mapping[str, object | None]) -> dict[str, str | None]:
    foreign = sorted(set(fields) - OPUS_KEYS)
    if foreign:
        raise NoteError(
            f"opus may write only {', '.join(sorted(OPUS_KEYS))} into a note, "
            f"not {', '.join(foreign)}"
        )
    if "status" in fields and fields["status"] is not None:
        _status(fields["status"])
    # `error` is one line by contract; collapse whatever the failure text held.
    return {
        key: None if value is None else render_scalar(_one_line(key, value))
        for key, value in fields.items()
    }


def _one_line(key: str, value: object) -> object:
    return " ".join(value.split()) if key == "error" and isinstance(value, str) else value


def _status(value: object) -> FRStatus:
    try:
        return FRStatus(str(value))
    except ValueError:
        allowed = ", ".join(status.value for status in FRStatus)
        raise NoteError(f"cannot write status {value!r}: use one of {allowed}") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NoteError(f"the note {path} no longer exists; nothing was written") from None
    except OSError as exc:
        raise NoteError(f"cannot read the note {path} ({exc.strerror}); check permissions") from exc


def replace_if_unchanged(path: Path, expected: bytes, new: bytes) -> bool:
    """Atomically replace `path` with `new` if it still holds `expected`; else keep it.

    The new bytes go to a hidden temp file in the same folder (fsynced, same mode),
    which is renamed over the note only after a last check that the note is unchanged.
    Returns False, leaving the note and no temp file behind, when the user changed it.
    """
    folder = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".opus-tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        if _read(path) != expected:
            return False
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(folder)
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_to_status_folder(path: Path, status: FRStatus, vault_root: Path) -> Path:
    """Move the note into `10_features/<folder of status>/`, never over another file.

    A note already anywhere below that folder stays where it is. When the name is
    taken, the note becomes `name (2).md`, `name (3).md`, ...
    """
    folder = vault_root / FEATURES_DIR / FOLDER_FOR_STATUS[status]
    if path.parent == folder or folder in path.parents:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    for target in _candidates(folder, path):
        if _move_without_clobber(path, target):
            _fsync_dir(folder)
            _fsync_dir(path.parent)
            return target
    raise NoteError(f"cannot find a free name for {path.name} in {folder}; tidy that folder")


def _candidates(folder: Path, path: Path) -> list[Path]:
    names = [path.name] + [f"{path.stem} ({n}){path.suffix}" for n in range(2, MAX_NAME_TRIES)]
    return [folder / name for name in names]


def _move_without_clobber(source: Path, target: Path) -> bool:
    """Move `source` to `target`; False, moving nothing, when `target` exists.

    A hard link fails atomically on an existing name, which a check-then-rename
    cannot promise; filesystems without hard links fall back to that check.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError:
        if target.exists():
            return False
        os.rename(source, target)
        return True
    source.unlink()
    return True
