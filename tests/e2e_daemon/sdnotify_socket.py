"""A real AF_UNIX datagram socket standing in for systemd's `NOTIFY_SOCKET`."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e_daemon.harness import wait_until


class NotifySocket:
    """Records every datagram (one sd_notify message each) with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def snapshot(self) -> list[str]:
        with self._lock:
            return [text for _at, text in self.messages]

    def times_of(self, field: str) -> list[float]:
        with self._lock:
            return [at for at, text in self.messages if field in text.splitlines()]

    def wait_for(self, field: str, *, after: int = 0, timeout_s: float = 15.0) -> int:
        """Index of the first message from `after` on with the line `field`."""

        def found() -> int | None:
            for index, text in enumerate(self.snapshot()[after:], after):
                if field in text.splitlines():
                    return index + 1  # +1 so index 0 is truthy; undone below
            return None

        return wait_until(found, f"{field!r} on NOTIFY_SOCKET", timeout_s) - 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    # AF_UNIX paths are short (108 bytes): pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="opus-sd-", dir="/tmp"))
    sock = NotifySocket(directory / "notify")
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
