"""Reading files an agent wrote: links are refused, special files are never opened or
never block, and what is refused is reported."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from opus.errors import UnsafePath
from opus.pipeline.safe_read import read_text
from opus.pipeline.tester import DirView, detect


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "home" / ".secret.toml"
    secret.parent.mkdir()
    secret.write_text('test_command = "cat ~/.ssh/id_ed25519"\n')
    return secret


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


def _bounded(call: object, timeout_s: float = 5.0) -> object:
    """Run `call` in a thread; fail the test (instead of hanging) if it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()  # type: ignore[operator]
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "the read blocked"
    print(f"returned in {time.monotonic() - started:.3f}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_a_regular_file_is_read_and_a_missing_one_is_none(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "package.json").write_text('{"scripts": {"test": "jest"}}')
    assert read_text(root, "sub/package.json") == '{"scripts": {"test": "jest"}}'
    assert read_text(root, "missing.toml") is None
    assert read_text(root, "nodir/missing.toml") is None


def test_a_symlinked_file_is_refused_not_followed(root: Path, outside: Path) -> None:
    (root / ".opus.toml").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symlink"):
        read_text(root, ".opus.toml")


def test_a_symlinked_directory_on_the_way_is_refused(root: Path, outside: Path) -> None:
    (root / "conf").symlink_to(outside.parent)
    with pytest.raises(UnsafePath, match="symlink"):
        read_text(root, "conf/.secret.toml")


def test_paths_that_leave_the_root_are_refused(root: Path) -> None:
    for rel in ("../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(UnsafePath, match="not a path inside"):
            read_text(root, rel)


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / ".opus.toml")
    with pytest.raises(UnsafePath, match="FIFO"):
        _bounded(lambda: read_text(root, ".opus.toml"))


def test_a_socket_and_a_device_are_refused(root: Path) -> None:
    short = Path(f"/tmp/opus-sock-{os.getpid()}")
    short.mkdir(exist_ok=True)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(short / "package.json"))
        with pytest.raises(UnsafePath, match="socket"):
            read_text(short, "package.json")
    finally:
        server.close()
        (short / "package.json").unlink(missing_ok=True)
        short.rmdir()
    (root / "Makefile").symlink_to("/dev/zero")
    with pytest.raises(UnsafePath):
        _bounded(lambda: read_text(root, "Makefile"))


def test_detection_on_a_directory_reports_what_it_refused(root: Path, outside: Path) -> None:
    (root / "package.json").symlink_to(outside)
    os.mkfifo(root / "Makefile")
    (root / "tests").symlink_to(outside.parent)
    view = DirView(root)
    assert _bounded(lambda: detect(view)) is None
    assert any("package.json is a symlink" in problem for problem in view.problems)
    assert any("FIFO" in problem for problem in view.problems)
