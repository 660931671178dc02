"""Hung services do not starve systemd: `opus run` as a real subprocess with a real
NOTIFY_SOCKET; ten jobs awaiting review on a GitHub stand-in that never answers; an
outbox owed to a notification URL that never answers."""

from __future__ import annotations

import itertools
import socket
import time

from opus.domain import FeatureRequest, FRStatus, JobState
from opus.notify import AppriseNotifier
from opus.registry import open_store
from opus.testing.clock import FakeClock
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.sdnotify_socket import notify_socket
from tests.standins.forge import ForgeStandin

WATCHDOG_USEC = 2_000_000
JOBS = 10
OBSERVE_S = 8.0


def _awaiting_review(ws: Workspace, count: int) -> None:
    """`count` jobs delivered earlier, each with a branch whose PR the poller checks."""
    store = open_store(ws.url)
    for n in range(1, count + 1):
        note = ws.root / "vault" / "10_features" / "05_review" / f"FR-{n}.md"
        fr = FeatureRequest(id=f"FR-{n}", title=f"Job {n}", status=FRStatus.PLANNED,
                            path=note, body="", content_hash=f"h{n}", repo=ws.repo, base="main")
        job = store.enqueue(fr, ws.repo)
        assert store.claim("seeding", 60) is not None
        store.update(job.id, branch=f"opus/fr-{n}-job")
        store.transition(job.id, JobState.AWAITING_REVIEW)


def test_watchdog_pings_keep_their_interval_while_the_forge_hangs(
    ws: Workspace, daemons: Daemons
) -> None:
    with ForgeStandin("github") as forge, notify_socket() as sd:
        forge.hang(120)
        ws.write_config(pr={"provider": "github", "api_url": forge.api_url,
                            "repository": "acme/widgets", "token_env": "FORGE_TOKEN",
                            "poll_s": 0.5})  # fmt: skip
        _awaiting_review(ws, JOBS)
        env = {"NOTIFY_SOCKET": str(sd.path), "WATCHDOG_USEC": str(WATCHDOG_USEC),
               "FORGE_TOKEN": forge.token}  # fmt: skip
        daemon = daemons.start(ws, env=env)
        sd.wait_for("READY=1")
        wait_until(lambda: forge.held, "the poller to ask the hung forge", 10)
        time.sleep(OBSERVE_S)
        pings = sd.times_of("WATCHDOG=1")
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        print(f"{len(pings)} pings in {OBSERVE_S:.0f} s with a hung forge; "
              f"largest gap {max(gaps, default=0):.2f} s (watchdog {WATCHDOG_USEC / 1e6:.0f} s)")
        assert len(pings) >= OBSERVE_S / 2
        assert max(gaps) < WATCHDOG_USEC / 1e6  # systemd would kill at this gap
        assert forge.held == 1  # one poll, stuck on its first request
        assert daemon.stop(timeout_s=20) == 0


def test_flushing_the_outbox_at_start_extends_the_start_timeout_per_send(
    ws: Workspace, daemons: Daemons
) -> None:
    owed = 2
    with socket.socket() as refused, socket.socket() as hung, notify_socket() as sd:
        refused.bind(("127.0.0.1", 0))
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # accepts, never answers: apprise gives up after 4 s
        # What a dead daemon owed: entries whose retry is long due.
        earlier = AppriseNotifier([f"json://127.0.0.1:{refused.getsockname()[1]}/x"],
                                  ws.root / ".opus" / "outbox", clock=FakeClock())
        for n in range(owed):
            earlier.notify("info", f"opus: owed {n}", "body")
        ws.write_config(notify={"urls": [f"json://127.0.0.1:{hung.getsockname()[1]}/x"]})

        daemons.start(ws, env={"NOTIFY_SOCKET": str(sd.path)})
        ready = sd.wait_for("READY=1", timeout_s=60)

        before = sd.snapshot()[:ready]
        extends = [m for m in before if m.startswith("EXTEND_TIMEOUT_USEC=")]
        print(f"{len(extends)} EXTEND_TIMEOUT_USEC before READY=1: {extends}")
        assert extends == ["EXTEND_TIMEOUT_USEC=30000000"] * owed
