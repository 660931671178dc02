"""Fixtures for sandbox tests: real bwrap, and directories outside the private /tmp."""

from __future__ import annotations

import shutil
import tempfile
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
