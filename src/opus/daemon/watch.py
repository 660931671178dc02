"""File events from the vault wake the loop at once (watchfiles, debounced)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300
READY_TIMEOUT_S = 5.0


def _is_note(_change: watchfiles.Change, path: str) -> bool:
    return path.endswith(".md") and "/." not in path


class VaultWatcher:
    """A background thread that sets `wake` whenever a note under `root` changes.

    It only wakes the loop; the loop does the scan, so a burst of saves costs one scan.
    If the watcher cannot run (e.g. inotify limits), the adaptive poll still finds work.

    `start()` returns once the watch is in place (bounded by `READY_TIMEOUT_S`): a note
    saved after the daemon reports READY wakes it, rather than waiting for the next poll.
    """

    def __init__(
        self,
        root: Path,
        wake: threading.Event,
        on_changes: Callable[[set[Path]], None] | None = None,
    ) -> None:
        self.root = root
        self._wake = wake
        self._on_changes = on_changes
        """Given each batch of changed note paths before the wake (incremental intake)."""
        self._stop = _StopSignal()
        self._thread = threading.Thread(target=self._run, name="vault-watch", daemon=True)

    def __repr__(self) -> str:
        return f"VaultWatcher({self.root}, alive={self._thread.is_alive()})"

    def start(self) -> None:
        self._thread.start()
        if not self._stop.watching.wait(timeout=READY_TIMEOUT_S):
            log.warning("vault watcher not ready after %.0fs; polling still runs", READY_TIMEOUT_S)

    def alive(self) -> bool:
        """Watching now: its events can be trusted to report every changed note."""
        return self._thread.is_alive() and self._stop.watching.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            self._stop.watching.set()  # never keep start() waiting on a watcher that ended

    def _watch(self) -> None:
        if not self.root.is_dir():
            log.warning("vault %s does not exist; watching nothing (polling still runs)", self.root)
            return
        try:
            for changes in watchfiles.watch(
                self.root,
                watch_filter=_is_note,
                debounce=DEBOUNCE_MS,
                stop_event=self._stop,
                rust_timeout=1000,
                yield_on_timeout=False,
            ):
                if self._on_changes is not None:
                    self._on_changes({Path(path) for _change, path in changes})
                self._wake.set()
        except Exception as exc:  # the poll is the fallback; never take the daemon down
            log.warning("vault watcher stopped (%s); falling back to polling", exc)


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
