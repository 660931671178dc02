"""A notifier that only remembers what it was asked to send."""

from __future__ import annotations

import threading

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

    def flush(self) -> int:
        """Nothing is ever pending here."""
        return 0
