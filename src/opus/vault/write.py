"""Writing opus's keys back into a note: atomic, surgical, and never over a user's edit."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from opus.domain import FOLDER_FOR_STATUS, FRStatus
from opus.errors import NoteError
from opus.vault.leftovers import create_temp
from opus.vault.scan import FEATURES_DIR
from opus.vault.text import OPUS_KEYS, edit_note, render_scalar

MAX_ATTEMPTS = 20
RETRY_PAUSE_S = 0.005
MAX_SWAPS = 100
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def write_fields(
    path: Path,
    fields: Mapping[str, object | None],
    *,
    move: bool,
    vault_root: Path,
    features_dir: Path | str = FEATURES_DIR,
) -> Path:
    """Set (or, with None, remove) opus's frontmatter keys in the note at `path`.

    Only `status`, `job`, `stage`, `branch`, `pr`, `updated` and `error` may be written.
    The edit is re-applied onto the newest content until the file stays unchanged from
    our read to our rename, so an edit the user saves meanwhile is kept. With `move`
    and a new `status`, the note then moves into that status's folder. Returns where
    the note now is. Raises `NoteError` when the note is gone or cannot be edited.
    """
    _edit(path, _render(fields))
    status = fields.get("status")
    if not (move and status is not None):
        return path
    try:
        return move_to_status_folder(path, _status(status), vault_root, features_dir)
    except NoteError as exc:
        error = fields.get("error")
        text = f"{error} | {exc}" if isinstance(error, str) and error else str(exc)
        _edit(path, _render({"error": text}))
        return path


def edit_own_note(path: Path, fields: Mapping[str, object | None]) -> None:
    """Set (None: remove) frontmatter keys of a note opus made (a question or plan note),
    as surgically and safely as `write_fields`, without its FR key list."""
    _edit(path, {key: None if value is None else render_scalar(_one_line(key, value))
                 for key, value in fields.items()})


def create_note(path: Path, text: str) -> bool:
    """Write a new note at `path` atomically; False (nothing written) if one exists."""
    try:
        tmp = create_temp(path, text.encode("utf-8"))
    except OSError as exc:
        raise NoteError(f"cannot write {path} ({exc.strerror}); check permissions") from exc
    try:
        os.link(tmp, path)  # fails if `path` exists: never over a note
        fsync_dir(path.parent)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise NoteError(f"cannot write {path} ({exc.strerror}); check permissions") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _edit(path: Path, rendered: Mapping[str, str | None]) -> None:
    for attempt in range(MAX_ATTEMPTS):
        before = _read(path)
        after = edit_note(before, rendered)
        if after == before or replace_if_unchanged(path, before, after):
            return
        # The user is saving right now; let the editor finish before reading again.
        time.sleep(RETRY_PAUSE_S * (attempt + 1))
    raise NoteError(f"{path} kept changing while opus tried to update it; it will retry")


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
    which is *exchanged* with the note in one step (`renameat2(RENAME_EXCHANGE)`): the
    compare then happens on the file that was displaced, so no save can slip in between
    a compare and a rename. If the displaced file is not `expected` (the user saved),
    it is swapped back — and if the user saved yet again meanwhile, that newer save is
    put back instead (see `_swap_back`). Returns False, leaving the user's newest save
    in place and no temp file behind, when the user changed the note. Filesystems
    without the exchange fall back to compare-then-rename.
    """
    folder = path.parent
    tmp = create_temp(path, new)
    try:
        ours = tmp.stat().st_ino
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        if not _exchange(tmp, path):
            if _read(path) != expected:
                return False
            os.replace(tmp, path)
        elif tmp.read_bytes() != expected:
            _swap_back(path, tmp, ours)
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    return True


def _swap_back(path: Path, tmp: Path, ours: int) -> None:
    """Put the user's newest save back at `path` after an exchange displaced it.

    Invariant: `tmp` holds the newest user save known; `path` holds `expected_ino`
    unless someone saved over it since. Each exchange displaces whatever is at `path`
    into `tmp`: if that is what we put there, the user's save is back in place;
    otherwise it is a save newer than the one we just placed, and goes back in turn.
    """
    expected_ino = ours
    for _ in range(MAX_SWAPS):
        placing = tmp.stat().st_ino
        if not _exchange(tmp, path):
            raise NoteError(f"{path}: the filesystem stopped supporting an atomic exchange")
        if tmp.stat().st_ino == expected_ino:
            return
        expected_ino = placing
    raise NoteError(f"{path} kept changing while opus restored the user's save; it will retry")


def _exchange(a: Path, b: Path) -> bool:
    """Swap the files at `a` and `b` atomically; False when the filesystem cannot."""
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def in_another_status_folder(
    path: Path, status: FRStatus, vault_root: Path, features_dir: Path | str = FEATURES_DIR
) -> bool:
    """The note lies in the folder of a status other than `status` (`05_review/` for a
    `done` note): where a move opus began was cut short, after the status was written
    and before the note moved. Folders of the user's own (and `01_ideas/`) never count."""
    features = vault_root / features_dir
    if not path.is_relative_to(features):
        return False
    parts = path.relative_to(features).parts
    folders = set(FOLDER_FOR_STATUS.values())
    return len(parts) > 1 and parts[0] in folders and parts[0] != FOLDER_FOR_STATUS[status]


def move_to_status_folder(
    path: Path, status: FRStatus, vault_root: Path, features_dir: Path | str = FEATURES_DIR
) -> Path:
    """Move the note into `<features>/<folder of status>/`, never over another file.

    A note already anywhere below that folder stays where it is. When a file of the
    same name is there, nothing moves (no `name (2).md` copies): `NoteError` says why.
    """
    folder = vault_root / features_dir / FOLDER_FOR_STATUS[status]
    if path.parent == folder or folder in path.parents:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if not _move_without_clobber(path, target):
        where = target.relative_to(vault_root) if target.is_relative_to(vault_root) else target
        raise NoteError(
            f"not moved to {where}: a file of that name is already there; "
            "rename or remove one of them"
        )
    fsync_dir(folder)
    fsync_dir(path.parent)
    return target


def _move_without_clobber(source: Path, target: Path) -> bool:
    """Move `source` to `target`; False, moving nothing, when `target` exists.

    A hard link fails atomically on an existing name, which a check-then-rename
    cannot promise; filesystems without hard links fall back to that check.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        if not os.path.samefile(source, target):
            return False
        # The same file under both names: a move killed between link and unlink. Finish it.
    except OSError:
        if target.exists():
            return False
        os.rename(source, target)
        return True
    source.unlink()
    return True
