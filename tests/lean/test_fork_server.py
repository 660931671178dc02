"""The fork server the job processes come from: stopped (with its resource tracker) when
idle or at exit, and started again by the next job (real processes)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from multiprocessing import forkserver, resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from opus.daemon.forks import JOB_MODULES, start_fork_server, stop_fork_server


def _server_pid() -> int | None:
    server: Any = forkserver._forkserver
    pid: int | None = server._forkserver_pid
    return pid


def _tracker_pid() -> int | None:
    tracker: Any = resource_tracker._resource_tracker
    pid: int | None = tracker._pid
    return pid


def _fork_one() -> int | None:
    child = multiprocessing.get_context("forkserver").Process(target=os.getpid)
    child.start()
    child.join(60)
    return child.exitcode


def test_the_fork_server_is_stopped_and_a_later_job_starts_it_again() -> None:
    start_fork_server("command")
    try:
        assert _fork_one() == 0
        first, tracker = _server_pid(), _tracker_pid()
        assert first is not None and tracker is not None
        stop_fork_server()
        assert _server_pid() is None and _tracker_pid() is None
        assert not os.path.exists(f"/proc/{first}"), "SIGKILLed and reaped"
        assert not os.path.exists(f"/proc/{tracker}"), "its resource tracker too"
        stop_fork_server()  # nothing to stop: no error

        start_fork_server("command")
        assert _fork_one() == 0
        second = _server_pid()
        assert second is not None and second != first
        assert _tracker_pid() not in (None, tracker)
    finally:
        stop_fork_server()


def _collector_state(conn: Connection) -> None:
    conn.send((gc.isenabled(), gc.get_freeze_count(), sorted(set(JOB_MODULES) - set(sys.modules))))


def test_a_job_process_starts_with_the_preload_frozen_and_its_collector_on() -> None:
    """The preload runs with the collector paused, then freezes what it made: a job
    process collects as usual but never walks the server's thousands of module objects."""
    start_fork_server("command")
    try:
        ours, theirs = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("forkserver").Process(
            target=_collector_state, args=(theirs,))
        child.start()
        theirs.close()
        assert ours.poll(60)
        enabled, frozen, missing = ours.recv()
        child.join(60)
        assert child.exitcode == 0
        assert enabled
        assert missing == []
        assert frozen > 50_000, f"only {frozen} objects frozen: the preload was not frozen"
    finally:
        stop_fork_server()
