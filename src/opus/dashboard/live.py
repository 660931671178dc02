"""Live updates: the registry's change mark polled while a browser listens, sent as SSE.

One `ChangeFeed` per app reads `change_mark()` (one small query) every `poll_s` seconds,
but only while at least one event stream is open: with no browser on the board the
dashboard reads nothing at all. A change anywhere (a job row, a checkpoint, an event, the
pause flag, a daemon coming or going, by any host sharing the database) bumps `version`;
each open stream sends an `event: change` and the page re-fetches what it shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from opus.errors import OpusError

log = logging.getLogger(__name__)

POLL_S = 0.3
"""Registry polls while someone watches: a change shows within about half a second."""
STREAM_TICK_S = 0.1
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""


class ChangeFeed:
    """Counts registry changes while anyone listens."""

    def __init__(self, read_mark: Callable[[], tuple[Any, ...]], poll_s: float = POLL_S) -> None:
        self._read_mark = read_mark
        self.poll_s = poll_s
        self.version = 0
        self._listeners = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"ChangeFeed(version={self.version}, listeners={self._listeners})"

    @property
    def polling(self) -> bool:
        return self._thread is not None

    def subscribe(self) -> None:
        with self._lock:
            self._listeners += 1
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name="dashboard-changes",
                                                daemon=True)
                self._thread.start()

    def unsubscribe(self) -> None:
        with self._lock:
            self._listeners = max(0, self._listeners - 1)

    def close(self) -> None:
        self._closed.set()

    def _read(self) -> tuple[Any, ...] | None:
        try:
            return self._read_mark()
        except OpusError as err:  # the database went away: say so, keep trying
            log.warning("dashboard: cannot read the registry: %s", err)
            return None

    def _run(self) -> None:
        mark = self._read()
        while not self._closed.wait(self.poll_s):
            with self._lock:
                if self._listeners == 0:
                    self._thread = None
                    return
            new = self._read()
            if new is not None and new != mark:
                mark = new
                self.version += 1
        with self._lock:
            self._thread = None


def _frame(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


async def event_stream(feed: ChangeFeed, stopping: threading.Event) -> AsyncIterator[str]:
    """The `text/event-stream` body: `hello` at once, then `change` on every change.

    Ends when the server stops; a client that leaves cancels it (Starlette does that).
    """
    feed.subscribe()
    try:
        seen = feed.version
        yield "retry: 1000\n" + _frame("hello", str(seen))
        quiet_since = time.monotonic()
        while not stopping.is_set():
            await anyio.sleep(STREAM_TICK_S)
            if feed.version != seen:
                seen = feed.version
                quiet_since = time.monotonic()
                yield _frame("change", str(seen))
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"
    finally:
        feed.unsubscribe()
