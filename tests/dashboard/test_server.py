"""The dashboard served for real: uvicorn on loopback, the event stream, `opus dashboard`
as a subprocess, and the board inside `opus run`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opus.dashboard.listen import Listen
from opus.dashboard.server import DashboardServer
from opus.domain import JobState
from opus.errors import ConfigError
from tests.dashboard.helpers import Project
from tests.e2e_daemon.harness import Workspace, wait_until

STREAM_TIMEOUT_S = 20.0


def events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a `text/event-stream` response."""
    name = data = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and name:
            yield name, data
            name = data = ""


def test_a_registry_change_reaches_the_event_stream(served: DashboardServer,
                                                    project: Project) -> None:
    url = f"{served.url}/api/v1/stream"
    with httpx.stream("GET", url, timeout=STREAM_TIMEOUT_S) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        assert next(stream)[0] == "hello"
        wait_until(lambda: served.ctx.feed.polling, "the feed to poll", 10)
        time.sleep(served.ctx.feed.poll_s * 2)  # let it read the mark before the change
        project.clock.advance(1)  # every write stamps updated_at with the (here fake) time
        project.store.transition(project.ids["FR-1"], JobState.CANCELLED)
        assert next(stream) == ("change", "1")
    # nobody listens any more: the feed stops reading the registry
    wait_until(lambda: not served.ctx.feed.polling, "the feed to stop polling", 10)


def test_api_over_the_network(served: DashboardServer) -> None:
    board = httpx.get(f"{served.url}/api/v1/board", timeout=10).json()
    assert [lane["lane"] for lane in board["lanes"]][:2] == ["queued", "running"]


def test_a_port_in_use_is_a_config_error(served: DashboardServer, project: Project) -> None:
    with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
        DashboardServer(project.context(), Listen("127.0.0.1", served.port)).start()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _opus(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
    return subprocess.Popen([sys.executable, "-m", "opus", "--config", str(root / "opus.toml"),
                             *args], cwd=root, env={**base, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_opus_dashboard_serves_until_sigterm(project: Project) -> None:
    proc = _opus(project.root, "dashboard", "--listen", "127.0.0.1:0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("opus dashboard at http://127.0.0.1:"), first
        url = first.split()[3].rstrip("/")
        assert httpx.get(f"{url}/api/v1/jobs", timeout=10).json()["jobs"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_opus_dashboard_refuses_an_open_bind_without_token(project: Project) -> None:
    proc = _opus(project.root, "dashboard", "--listen", "0.0.0.0:0")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "not loopback, without a token: set OPUS_DASHBOARD_TOKEN" in err


def test_the_board_inside_opus_run(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    port = free_port()  # the daemon does not print where it serves: pick the port here
    ws.write_config(dashboard={"listen": f"127.0.0.1:{port}"})
    daemon = _opus(tmp_path, "run", env={"ANTHROPIC_API_KEY": "unused"})
    try:
        def serving() -> dict[str, object] | None:
            try:
                found = httpx.get(f"http://127.0.0.1:{port}/api/v1/daemons", timeout=5).json()
            except httpx.HTTPError:
                return None
            return found if found["daemon_running"] else None

        daemons = wait_until(serving, "the daemon's board to show the daemon", 60)
        assert daemons["daemons"][0]["pid"] == daemon.pid  # type: ignore[index]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        daemon.kill()
        daemon.wait(timeout=10)


def test_opus_run_refuses_an_open_board_without_token(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write_config(dashboard={"listen": "0.0.0.0:7900"})
    code, out = ws.cli("run", "--once")
    assert code == 2 and "not loopback, without a token" in out
    ws.write_config(dashboard={"listen": "7900"})
    code, out = ws.cli("run", "--once")
    assert code == 2 and "dashboard.listen" in out and "not host:port" in out
