"""Fixtures for sandbox tests: real bwrap, and directories outside the private /tmp."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.sandbox import BwrapSandbox, bwrap_available, sandbox_for

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory under /var/tmp: visible (read-only) inside the sandbox, unlike /tmp."""
    path = Path(tempfile.mkdtemp(prefix="opus-sbx-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    return path


def bwrap_sandbox(*, network: bool = False, cap: int = 200_000, **kwargs: object) -> BwrapSandbox:
    """A real bwrap sandbox built from config, as the daemon builds it."""
    cfg = SandboxConfig(kind="bwrap", network=network, output_cap_bytes=cap)
    sandbox = sandbox_for(cfg, **kwargs)  # type: ignore[arg-type]
    assert isinstance(sandbox, BwrapSandbox)
    return sandbox


@contextlib.contextmanager
def serving(server: socket.socket, reply: bytes) -> Iterator[None]:
    """Accept connections on `server`, answer `reply`, until the block ends (bounded)."""
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


@contextlib.contextmanager
def unix_service(path: Path, reply: bytes = b"pong") -> Iterator[Path]:
    """A host service: a unix socket bound at `path`, answering `reply`, until the block
    ends (then the socket file is removed)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    try:
        with serving(server, reply):
            yield path
    finally:
        path.unlink(missing_ok=True)


UNIX_CONNECT = (
    'python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(3); '
    "s.connect('{path}'); print('reply', s.recv(4))\""
)
"""A command that connects to the unix socket at `{path}` and prints what it answers."""
