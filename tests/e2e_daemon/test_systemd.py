"""The daemon speaks systemd's notify protocol (SPEC §7) as a real subprocess."""

from __future__ import annotations

import itertools
import signal
import threading

from opus.domain import JobState, Stage
from tests.e2e_daemon.agency import Agency, busy_coder
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.sdnotify_socket import notify_socket
from tests.ops.httpsink import Sink

WATCHDOG_USEC = 2_000_000


def test_ready_watchdog_reload_and_stop(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink
) -> None:
    with notify_socket() as sd:
        env = {"NOTIFY_SOCKET": str(sd.path), "WATCHDOG_USEC": str(WATCHDOG_USEC),
               "E2E_MARKER": "visible", "E2E_UNLISTED": "hidden",
               "OPUS_SANDBOX__PASS_ENV": '["E2E_MARKER"]'}
        daemon = daemons.start(ws, env=env)

        ready = sd.wait_for("READY=1")
        # Idle, polling every 0.5 s at most: the watchdog (due every 1 s) keeps coming.
        wait_until(lambda: len(sd.times_of("WATCHDOG=1")) >= 2, "two WATCHDOG=1 pings", 5)
        pings = sd.times_of("WATCHDOG=1")
        assert max(b - a for a, b in itertools.pairwise(pings)) < 2.0
        assert "STATUS=0 running, 0 queued" in "\n".join(sd.snapshot()[ready:])

        # SIGHUP re-reads opus.toml: the notify URL added now is used for the next job.
        ws.write_config(notify={"urls": [sink.url]})
        mark = len(sd.snapshot())
        daemon.send(signal.SIGHUP)
        reloading = sd.wait_for("RELOADING=1", after=mark)
        assert "MONOTONIC_USEC=" in sd.snapshot()[reloading]
        sd.wait_for("READY=1", after=reloading + 1)

        ws.write_fr("FR-1", test_command="grep -q FR-1 fr-1.txt && env")
        job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW)
        wait_until(
            lambda: [m for m in sink.received if "FR-1 ready for review" in m.get("title", "")],
            "the PR-opened notification sent to the URL added by the reload",
        )
        test_run = [r for r in ws.store.stage_runs(job.id) if r.stage is Stage.TEST][-1]
        tail = test_run.output["output_tail"]
        assert "E2E_MARKER=visible" in tail  # the child got what sandbox.pass_env lists...
        assert "E2E_UNLISTED" not in tail  # ...and the allowlist, nothing else of the daemon's
        assert "NOTIFY_SOCKET" not in tail and "WATCHDOG_USEC" not in tail

        # SIGTERM while a coder is at work: STOPPING, exit 0, the job resumable.
        agency.overrides[("FR-2", "coder")] = busy_coder("FR-2", threading.Event())
        ws.write_fr("FR-2")
        wait_until(lambda: agency.count("FR-2", "coder") == 1, "FR-2's coder at work")
        sd.wait_for("STATUS=1 running, 0 queued", after=reloading)
        mark = len(sd.snapshot())
        assert daemon.stop(signal.SIGTERM, timeout_s=15) == 0
        sd.wait_for("STOPPING=1", after=mark, timeout_s=1)

    stopped = ws.job("FR-2")
    assert stopped is not None and stopped.state is JobState.QUEUED
    assert stopped.worker is None
    assert ws.completed_stages("FR-2") == ["plan"]
