"""SystemdNotifier against a real AF_UNIX datagram socket; WatchdogGate sequences."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.daemon.sdnotify import SystemdNotifier, WatchdogGate, child_env


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def _receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sd = SystemdNotifier({"NOTIFY_SOCKET": path}, monotonic_usec=lambda: 123456789)

    assert sd.enabled
    assert sd.ready()
    assert _receive(sock) == "READY=1"
    assert sd.status("2 running,\n5 queued")
    assert _receive(sock) == "STATUS=2 running, 5 queued"
    assert sd.watchdog()
    assert _receive(sock) == "WATCHDOG=1"
    assert sd.reloading()
    assert _receive(sock) == "RELOADING=1\nMONOTONIC_USEC=123456789"
    assert sd.ready(status="reloaded")
    assert _receive(sock) == "READY=1\nSTATUS=reloaded"
    assert sd.stopping()
    assert _receive(sock) == "STOPPING=1"
    assert sd.extend_timeout(30)
    assert _receive(sock) == "EXTEND_TIMEOUT_USEC=30000000"


def test_reloading_uses_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    import time

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    SystemdNotifier({"NOTIFY_SOCKET": path}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    usec = int(_receive(sock).split("MONOTONIC_USEC=")[1])
    assert before <= usec <= after


def test_abstract_socket() -> None:
    name = f"opus-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert _receive(sock) == "READY=1"


def test_without_notify_socket_everything_is_a_no_op() -> None:
    sd = SystemdNotifier({})
    assert not sd.enabled
    assert not sd.ready() and not sd.watchdog() and not sd.stopping()
    assert sd.watchdog_interval_s() is None


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    sd = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert sd.ready() is False
    assert sd.watchdog() is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "120000000"}
    assert SystemdNotifier(env).watchdog_interval_s() == 60.0
    assert SystemdNotifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s() == 60
    assert SystemdNotifier({**env, "WATCHDOG_PID": "1"}, pid=4242).watchdog_interval_s() is None
    assert SystemdNotifier({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval_s() is None
    assert SystemdNotifier({**env, "WATCHDOG_USEC": "0"}).watchdog_interval_s() is None


def test_child_env_strips_the_systemd_variables() -> None:
    environ = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "2",
        "PATH": "/usr/bin",
        "HOME": "/home/x",
    }
    assert child_env(environ) == {"PATH": "/usr/bin", "HOME": "/home/x"}
    assert "NOTIFY_SOCKET" in environ  # the input is left alone


def test_watchdog_gate_sequence() -> None:
    gate = WatchdogGate(60.0)
    assert gate.remaining_s(1000.0) == 0.0
    assert gate.due(1000.0)
    assert not gate.due(1000.0)
    assert gate.remaining_s(1030.0) == 30.0
    assert not gate.due(1059.9)
    assert gate.due(1060.0)
    assert gate.remaining_s(1200.0) == 0.0
    assert gate.due(1200.0)
    assert not gate.due(1259.0)


def test_watchdog_gate_without_watchdog_is_never_due() -> None:
    gate = WatchdogGate(None)
    assert not gate.due(0.0) and not gate.due(1e9)
    assert gate.remaining_s(5.0) is None
