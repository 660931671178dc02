"""Finishing note moves that a kill cut short: one FR note under two names.

`write.move_to_status_folder` moves a note by hard-linking it into its status folder and
then unlinking the old name, because a link refuses an existing name atomically. A
process killed between the two steps leaves the same file (one inode) in two folders,
which the scan would read as two notes with one id. At intake's full scan, such a pair
is repaired: the name in the folder of the note's own `status:` is kept and the other
names are removed. The content is never lost (the kept name is the same file), and a
note that is not an FR, or whose names are all outside its status folder, is left alone.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from opus.domain import FOLDER_FOR_STATUS
from opus.vault.leftovers import stale_name
from opus.vault.note import ParsedNote, Verdict

log = logging.getLogger(__name__)

def finish_interrupted_moves(
    paths: Iterable[Path], read: Callable[[Path], Verdict | None], features: Path
) -> set[Path]:
    """Remove the stale names of FR notes that sit in two folders as one file.

    `paths` are the note paths of a full walk of `features`; `read` parses one (the
    scan's cache). Returns the paths removed.
    """
    removed: set[Path] = set()
    for names in _same_file_groups(paths):
        keeper = _keeper(names, read(names[0]), features)
        if keeper is None:
            continue
        for stale in names:
            if stale != keeper and _remove_second_name(stale, keeper):
                removed.add(stale)
    return removed


def _same_file_groups(paths: Iterable[Path]) -> list[list[Path]]:
    by_inode: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if st.st_nlink > 1:
            by_inode[(st.st_dev, st.st_ino)].append(path)
    return [names for names in by_inode.values() if len(names) > 1]


def _keeper(names: list[Path], verdict: Verdict | None, features: Path) -> Path | None:
    """The one name in the folder of the note's status; None when that is not clear."""
    if not isinstance(verdict, ParsedNote):
        return None  # not an FR (or unreadable): not opus's to touch
    folder = features / FOLDER_FOR_STATUS[verdict.fr.status]
    inside = [name for name in names if folder in name.parents]
    return inside[0] if len(inside) == 1 else None


def _remove_second_name(stale: Path, keeper: Path) -> bool:
    """Unlink `stale` if it is still the same file as `keeper`.

    The name is first renamed to a hidden one only opus uses, and compared there: a user
    who saved over `stale` meanwhile (a new file at that name) gets the save put back.
    """
    hidden = stale_name(stale)
    try:
        os.rename(stale, hidden)
    except FileNotFoundError:
        return False
    try:
        same = os.path.samefile(hidden, keeper)
    except FileNotFoundError:
        same = False
    if not same:
        _put_back(hidden, stale)
        return False
    hidden.unlink()
    log.warning("finished an interrupted move: removed %s, the same note is at %s",
                stale, keeper)
    return True


def _put_back(hidden: Path, stale: Path) -> None:
    try:
        os.link(hidden, stale)
    except FileExistsError:
        log.error("%s changed while opus finished a move; that version is kept as %s",
                  stale, hidden)
        return
    hidden.unlink()
