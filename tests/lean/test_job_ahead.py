"""A job process readies what it needs later once its first request is out: the
callback runs once, on a thread, at the first activity."""

from __future__ import annotations

import threading

from opus.daemon.jobproc import ReportingControl


def test_the_first_activity_starts_the_work_ahead_once_on_a_thread() -> None:
    ran: list[str] = []
    done = threading.Event()

    def ahead() -> None:
        ran.append(threading.current_thread().name)
        done.set()

    control = ReportingControl(7, log=lambda _line: None)
    control.on_first_activity = ahead
    control.begin_stage("code")
    assert not ran, "a stage start is no activity"
    control.touch("coder: bash ls")
    assert done.wait(10)
    control.touch("coder: editor create calc.py")
    assert ran == ["job-ahead"]
    assert control.on_first_activity is None
