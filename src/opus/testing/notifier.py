"""A notifier that only remembers what it was asked to send."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opus.seams import NotifyKind


class RecordingNotifier:
    """Implements `opus.seams.Notifier`; `sent` holds every (kind, title, body) in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[NotifyKind, str, str]] = []
        self._lock = threading.Lock()

    def notify(self, kind: NotifyKind, title: str, body: str) -> None:
        with self._lock:
            self.sent.append((kind, title, body))

    def kinds(self) -> list[NotifyKind]:
        """The kinds sent so far, in order."""
        with self._lock:
            return [kind for kind, _title, _body in self.sent]

    def flush(self, before_send: Callable[[], object] | None = None) -> int:
        """Nothing is ever pending here."""
        del before_send
        return 0

    def start(self) -> None:
        """Nothing to send in the background."""

    def stop(self) -> None:
        """Nothing to stop."""
