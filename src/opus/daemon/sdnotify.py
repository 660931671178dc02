"""systemd's notify protocol (`sd_notify`), spoken over the socket directly.

`SystemdNotifier` is the thin shell: it sends datagrams to `NOTIFY_SOCKET` (a path, or an
abstract socket written `@name`) and does nothing when that variable is absent, so the
same daemon runs under systemd and in a terminal. `WatchdogGate` is the pure part: the
loop asks it whether a `WATCHDOG=1` is due, and pings only after its own health check,
so a wedged loop stops the pings and systemd restarts the service. There is no
free-running ping thread on purpose: it would keep a dead daemon looking alive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without systemd's notify variables, for child processes.

    A child that inherited them could ping the watchdog or report READY for the daemon.
    """
    return {key: value for key, value in environ.items() if key not in SYSTEMD_VARIABLES}


def _monotonic_usec() -> int:
    # systemd compares MONOTONIC_USEC against CLOCK_MONOTONIC.
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _socket_address(value: str) -> str:
    # "@name" is an abstract socket: a leading NUL byte in the kernel's notation.
    return "\0" + value[1:] if value.startswith("@") else value


class SystemdNotifier:
    """Sends sd_notify messages; every method is a no-op without `NOTIFY_SOCKET`.

    `environ` is the process environment, read at the edge and passed in. Sending never
    raises: a vanished socket is logged once and the daemon carries on.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        pid: int | None = None,
        monotonic_usec: Callable[[], int] = _monotonic_usec,
    ) -> None:
        socket_value = environ.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(socket_value) if socket_value else None
        self._watchdog_usec = environ.get("WATCHDOG_USEC")
        self._watchdog_pid = environ.get("WATCHDOG_PID")
        self._pid = os.getpid() if pid is None else pid
        self._monotonic_usec = monotonic_usec
        self._warned = False

    def __repr__(self) -> str:
        return f"SystemdNotifier(enabled={self.enabled}, watchdog_s={self.watchdog_interval_s()})"

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (the service runs with `Type=notify`)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """The daemon is serving (also sent again after a reload has finished)."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """A one-line status for `systemctl status`, e.g. "2 running, 5 queued"."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Tell the watchdog the loop is healthy."""
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """A config reload started; call `ready()` when it is done."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={self._monotonic_usec()}")

    def stopping(self) -> bool:
        """Shutdown started (SIGTERM): systemd waits up to `TimeoutStopSec=`."""
        return self.send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before the start (or stop) timeout kills the service.

        sd_notify(3): the service must send a new message within that time; each slow
        step (a notification send) extends again before it starts.
        """
        return self.send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of `WATCHDOG_USEC`, or None when no watchdog is set.

        When `WATCHDOG_PID` names another process, the watchdog is not ours to ping.
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid and self._watchdog_pid.strip() != str(self._pid):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not a whole number", self._watchdog_usec)
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None

    def send(self, *fields: str) -> bool:
        """Send `fields` as one datagram; True when it was handed to systemd."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at NOTIFY_SOCKET (%s); continuing", exc)
                self._warned = True
            return False
        return True


def _one_line(text: str) -> str:
    # A newline would start a new (bogus) assignment in the datagram.
    return " ".join(text.split())


class WatchdogGate:
    """Decides when the next `WATCHDOG=1` is due; pure (the loop passes the time in).

    `interval_s=None` (no watchdog configured) is never due.
    """

    def __init__(self, interval_s: float | None) -> None:
        self.interval_s = interval_s
        self._last: float | None = None

    def due(self, now_monotonic: float) -> bool:
        """True when a ping is due now; the ping is then counted as sent."""
        if self.interval_s is None:
            return False
        if self._last is not None and now_monotonic - self._last < self.interval_s:
            return False
        self._last = now_monotonic
        return True

    def remaining_s(self, now_monotonic: float) -> float | None:
        """Seconds until the next ping is due (0 when overdue), None without a watchdog.

        The loop must not sleep longer than this, or systemd kills a healthy daemon.
        """
        if self.interval_s is None:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval_s - now_monotonic)
