"""File events wake the loop at once: notes in the vault, and `<state_dir>/wake`.

`watchfiles` checks its stop signal once per `step`; the default (50 ms) means 20 wakes a
second of an idle daemon. `STEP_MS` trades that for latency: an event reaches the loop
within one to two steps, well inside the one second a command must take to act.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from opus.wake import WAKE_FILE

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300
STEP_MS = 100
"""How often the watch thread looks at its stop signal and its buffered events (10/s): a
save reaches the loop after one to two steps (the second sees no new event), inside the
0.25 s pickup budget with the turn itself."""
RUST_TIMEOUT_MS = 0
"""No periodic timeout: the thread wakes only for events and its stop check."""
READY_TIMEOUT_S = 5.0

PathFilter = Callable[[str], bool]


def is_note_or_folder(path: str) -> bool:
    """A note, or a folder that may hold notes: one created or moved in (a folder now), or
    deleted or moved away (nothing there now); intake re-walks just that subtree. Other
    files (images, attachments) are left out; a deleted one is let through harmlessly."""
    if "/." in path:
        return False
    if path.endswith(".md"):
        return True
    return os.path.isdir(path) or not os.path.lexists(path)


def is_wake_file(path: str) -> bool:
    return Path(path).name == WAKE_FILE


class VaultWatcher:
    """A background thread that sets `wake` whenever a watched file under `root` changes.

    It only wakes the loop (and hands the changed paths to `on_changes`); the loop does the
    work, so a burst of saves costs one turn. If the watcher cannot run (e.g. inotify
    limits), the adaptive poll still finds work.

    `start()` returns once the watch is in place (bounded by `READY_TIMEOUT_S`): a note
    saved after the daemon reports READY wakes it, rather than waiting for the next poll.
    """

    def __init__(
        self,
        root: Path,
        wake: threading.Event,
        *,
        on_changes: Callable[[set[Path]], None] | None = None,
        accept: PathFilter = is_note_or_folder,
        recursive: bool = True,
    ) -> None:
        self.root = root
        self._wake = wake
        self._on_changes = on_changes
        """Given each batch of changed paths before the wake (incremental intake)."""
        self._accept = accept
        self._recursive = recursive
        self._stop = _StopSignal()
        self._thread = threading.Thread(target=self._run, name=f"watch:{root.name}", daemon=True)

    def __repr__(self) -> str:
        return f"VaultWatcher({self.root}, alive={self._thread.is_alive()})"

    def start(self, *, wait: bool = True) -> None:
        self._thread.start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Return once the watch is in place (bounded)."""
        if not self._stop.watching.wait(timeout=READY_TIMEOUT_S):
            log.warning("watcher of %s not ready after %.0fs; polling still runs",
                        self.root, READY_TIMEOUT_S)

    def alive(self) -> bool:
        """Watching now: its events can be trusted to report every changed note."""
        return self._thread.is_alive() and self._stop.watching.is_set()

    def stop(self, *, wait: bool = True) -> None:
        """Stop watching; with `wait`, until the thread has ended (within a step)."""
        self._stop.set()
        if wait and self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            self._stop.watching.set()  # never keep start() waiting on a watcher that ended

    def _watch(self) -> None:
        if not self.root.is_dir():
            log.warning("%s does not exist; watching nothing (polling still runs)", self.root)
            return
        try:
            for changes in watchfiles.watch(
                self.root,
                watch_filter=lambda _change, path: self._accept(path),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._stop,
                rust_timeout=RUST_TIMEOUT_MS,
                yield_on_timeout=False,
                recursive=self._recursive,
            ):
                if self._on_changes is not None:
                    self._on_changes({Path(path) for _change, path in changes})
                self._wake.set()
        except Exception as exc:  # the poll is the fallback; never take the daemon down
            log.warning("watcher of %s stopped (%s); falling back to polling", self.root, exc)


def wake_watcher(state_dir: Path, wake: threading.Event) -> VaultWatcher:
    """Watches `<state_dir>/wake`, which commands rewrite (`opus.wake`); not recursive,
    so worktrees and the database next to it cost nothing."""
    return VaultWatcher(state_dir, wake, accept=is_wake_file, recursive=False)


class _StopSignal:
    """The watch's `stop_event`; its first poll tells that the watch is in place.

    `watchfiles.watch` sets up its inotify watches before it starts waiting for changes,
    and only that wait polls `is_set()`; changes from then on are buffered, not lost.
    """

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.watching = threading.Event()

    def is_set(self) -> bool:
        self.watching.set()
        return self.stopped.is_set()

    def set(self) -> None:
        self.stopped.set()
