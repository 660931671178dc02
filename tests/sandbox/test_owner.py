"""Nothing a command started outlives the process that runs it (real bwrap, real SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import needs_bwrap
from tests.sandbox.test_process import _processes_with

OWNER = """
import sys, threading
from pathlib import Path
from opus.config import SandboxConfig
from opus.sandbox import sandbox_for

sandbox = sandbox_for(SandboxConfig(kind="bwrap"))
marker, worktree = sys.argv[1], Path(sys.argv[2])
command = f"sleep {marker} & setsid sleep {marker} & (trap '' TERM HUP; sleep {marker})"
# Like a daemon's worker: the command runs in a thread, not the main one.
worker = threading.Thread(
    target=lambda: sandbox.run(command, worktree=worktree, timeout_s=120)
)
worker.start()
print("started", flush=True)
worker.join()
"""


@needs_bwrap
@pytest.mark.bwrap
@pytest.mark.parametrize("round_", range(3))
def test_owner_killed_mid_command_leaves_no_process(worktree: Path, round_: int) -> None:
    marker = f"{os.getpid() % 1000 + 3000}.{round_}{time.monotonic_ns() % 100000}"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, marker, str(worktree)],
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    assert owner.stdout is not None
    assert owner.stdout.readline() == b"started\n"
    deadline = time.monotonic() + 20
    while len(_processes_with(f"sleep {marker}")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_processes_with(f"sleep {marker}")) >= 3
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    killed = time.monotonic()
    while _processes_with(f"sleep {marker}") and time.monotonic() - killed < 3:
        time.sleep(0.02)
    left = _processes_with(f"sleep {marker}")
    print(f"command gone {time.monotonic() - killed:.2f}s after its owner was SIGKILLed")
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert left == []
