"""Per-job log files and the daemon's own stderr logging.

Each job writes `state_dir/logs/job-<id>.log`: one timestamped line per event (stage
start, agent reply, tool call, test result). `opus logs FR` reads it; `opus logs FR -f`
follows it. The daemon's logging goes to stderr; under systemd (`JOURNAL_STREAM` names
stderr) it drops timestamps, which journald adds itself, and prefixes syslog priorities
(`<3>` error ... `<7>` debug) so `journalctl -p warning` works.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from opus.clock import SystemClock
from opus.errors import ConfigError, NotFound
from opus.seams import Clock

LOG_DIR = "logs"
HTTP_CLIENT_LOGGERS = ("httpx", "httpx2")
"""The loggers of the HTTP client under the `anthropic` SDK (httpx2 in newer releases)."""


def log_path(state_dir: Path, job_id: int) -> Path:
    """Where job `job_id` writes its log."""
    return state_dir / LOG_DIR / f"job-{job_id}.log"


class JobLog:
    """Appends timestamped lines to one job's log file; safe to share between threads.

    The file is opened per write (O_APPEND, one `write` per entry), so a rotated or
    deleted file is simply recreated and a long-lived daemon holds no descriptors.
    `JobLog.write` fits `AgentTask.on_activity` directly.
    """

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = path
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()

    @classmethod
    def for_job(cls, state_dir: Path, job_id: int, *, clock: Clock | None = None) -> JobLog:
        """The log of job `job_id` under `state_dir`."""
        return cls(log_path(state_dir, job_id), clock=clock)

    def __repr__(self) -> str:
        return f"JobLog({self.path})"

    def write(self, message: str) -> None:
        """Append `message`, stamped with the current UTC time; continuation lines indented."""
        stamp = self._clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        first, *rest = message.rstrip("\n").split("\n")
        text = "".join([f"{stamp} {first}\n", *(f"    {line}\n" for line in rest)])
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, text.encode("utf-8", errors="replace"))
            finally:
                os.close(fd)


def read_log(path: Path) -> str:
    """The whole log; `NotFound` when the job has not written one yet."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise NotFound(
            f"no log at {path} yet: the job has not started; `opus status` shows its state"
        ) from exc


def follow(
    path: Path,
    *,
    stop: Callable[[], bool],
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield the log's lines (without newlines), then new ones as they are written.

    Waits for a file that does not exist yet, starts over when the file shrinks
    (rotated or truncated), and ends once `stop()` is true after a final read.
    """
    reader = _Tail(path)
    while True:
        stopping = stop()
        yield from reader.read_lines(final=stopping)
        if stopping:
            return
        sleep(poll_s)


class _Tail:
    """Reads what was appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read_lines(self, *, final: bool) -> list[str]:
        try:
            size = self.path.stat().st_size
            if size < self.offset:
                self.offset, self.partial = 0, b""
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return [line.decode("utf-8", errors="replace") for line in lines]


# --------------------------------------------------------------------------- stderr

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """`<priority>logger: message`, the form journald parses from a service's stderr."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < 30 else 3)
        return f"<{priority}>{super().format(record)}"


def stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Whether `stream` is connected to journald, per systemd's `JOURNAL_STREAM=dev:ino`."""
    value = environ.get("JOURNAL_STREAM", "")
    device, _sep, inode = value.partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def configure_logging(
    level: str | int = "INFO",
    *,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send opus's logging to stderr, journald-friendly when stderr is the journal.

    Called once at the edge (the CLI); calling it again replaces the handler it added.
    """
    stream = stream or sys.stderr
    environ = os.environ if environ is None else environ
    resolved = _level(level)
    handler = logging.StreamHandler(stream)
    handler.set_name("opus-stderr")
    if stderr_is_journal(environ, stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "opus-stderr"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(resolved)
    # watchfiles logs every change it sees at INFO; the loop says what matters.
    logging.getLogger("watchfiles").setLevel(max(resolved, logging.WARNING))
    # The `anthropic` SDK's HTTP client logs every request at INFO ("HTTP Request: POST
    # …", dozens per stage); the job log has each turn. `-v` (DEBUG) shows them again.
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(resolved if resolved <= logging.DEBUG else
                                         max(resolved, logging.WARNING))
    return handler


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.upper())
    if not isinstance(resolved, int):
        raise ConfigError(
            f"log level {level!r} is unknown; use one of DEBUG, INFO, WARNING, ERROR"
        )
    return resolved
