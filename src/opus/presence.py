"""A daemon's presence in the registry: who runs where, and what only the daemon knows.

Every `opus run` keeps one row in the registry's `daemons` table: host, pid, role,
version, and `info` (its open circuit breakers, the FRs its intake left waiting on
dependencies, its last loop turn). A small thread renews the row every
`daemon.heartbeat_s`; the loop hands it new `info` each turn and it is written at once
when it changed. The row is removed when the daemon stops.

`opus status` reads the rows. A row whose daemon died without stopping (`kill -9`, a
crash, a lost host) is not a running daemon: on the same host its pid no longer exists;
on any host its last beat is older than `STALE_BEATS` beats. The next daemon started on
that host removes such rows of its host.

The heartbeat is a thread, not a loop step, because an idle loop sleeps for minutes
(`daemon.poll_idle_s`); `info["turn_at"]` says when the loop last turned, so a wedged
loop behind a beating thread still shows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from opus import __version__
from opus.daemon.breaker import OpenCircuit
from opus.domain import DaemonRecord
from opus.errors import OpusError
from opus.pids import pid_alive
from opus.scheduling import Blocked
from opus.seams import Clock, JobStore

log = logging.getLogger(__name__)

STALE_BEATS = 3
"""A record not renewed for this many beats (plus `SLACK_S`) belongs to a dead daemon."""
SLACK_S = 5.0


def is_alive(record: DaemonRecord, now: datetime, *, host: str | None = None) -> bool:
    """Whether the daemon of `record` still runs, as far as this host can tell."""
    age_s = (now - record.beat_at).total_seconds()
    if age_s > STALE_BEATS * record.beat_every_s + SLACK_S:
        return False
    if record.host == (host or socket.gethostname()):
        return pid_alive(record.pid)
    return True


def daemon_info(
    breakers: Sequence[OpenCircuit], blocked: Sequence[Blocked], now: datetime
) -> dict[str, Any]:
    """What a daemon publishes besides its identity (JSON-ready)."""
    return {
        "breakers": [
            {
                "key": circuit.key,
                "state": circuit.state,
                "failures": circuit.failures,
                "reopens_at": _iso(now + timedelta(seconds=circuit.reopens_in_s)),
                "last_error": circuit.last_error,
            }
            for circuit in breakers
        ],
        "waiting": [
            {
                "fr": item.fr.id,
                "title": item.fr.title,
                "waiting_on": list(item.waiting_on),
                "reason": item.reason,
                "held": dict(item.held),
            }
            for item in blocked
        ],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class Presence:
    """The daemon's side: keeps its record fresh until `stop()`."""

    def __init__(
        self, store: JobStore, clock: Clock, *, daemon_id: str, role: str, every_s: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.daemon_id = daemon_id
        self.role = role
        self.every_s = every_s
        host, _, rest = daemon_id.partition(":")
        self.host = host
        self.pid = int(rest.partition(":")[0] or os.getpid())
        self.started_at = clock.now()
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def __repr__(self) -> str:
        return f"Presence({self.daemon_id}, every {self.every_s}s)"

    def start(self, info: dict[str, Any]) -> None:
        """Remove records of dead daemons of this host, publish ours, start beating."""
        self._forget_dead_neighbours()
        self._info = {**info, "turn_at": _iso(self.clock.now())}
        self._beat()
        self._thread = threading.Thread(target=self._run, name="opus-presence", daemon=True)
        self._thread.start()

    def update(self, info: dict[str, Any]) -> None:
        """The loop turned: remember `info`, and write it now if it changed."""
        with self._lock:
            changed = {k: v for k, v in self._info.items() if k != "turn_at"} != info
            self._info = {**info, "turn_at": _iso(self.clock.now())}
        if changed:
            self._beat()

    def stop(self) -> None:
        """Stop beating and remove the record: this daemon no longer runs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.forget_daemon(self.daemon_id)
        except OpusError as exc:
            log.warning("could not remove this daemon's presence record: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._beat()

    def _beat(self) -> None:
        with self._lock:
            info = dict(self._info)
        record = DaemonRecord(
            id=self.daemon_id, host=self.host, pid=self.pid, role=self.role,
            version=__version__, started_at=self.started_at, beat_at=self.clock.now(),
            beat_every_s=self.every_s, info=info,
        )
        try:
            self.store.beat_daemon(record)
            self._warned = False
        except OpusError as exc:
            if not self._warned:
                log.warning("could not renew this daemon's presence record: %s", exc)
                self._warned = True

    def _forget_dead_neighbours(self) -> None:
        try:
            for record in self.store.daemons():
                if record.host == self.host and not pid_alive(record.pid):
                    self.store.forget_daemon(record.id)
        except OpusError as exc:
            log.warning("could not clean up old presence records: %s", exc)
