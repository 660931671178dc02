"""Command cgroups on the live hierarchies of this host, v2 and v1.

A hybrid host (v1 controllers, a v2 hierarchy without `pids` or `memory`, as the
containers this suite runs in have) cannot show v2's limits. What it can show for real,
in a private subtree of the v2 mount: that a process inside it is found there from its
own `/proc/self/cgroup` and `mountinfo`, that opus then falls back to v1 because v2
offers no `pids`, and that a v2 command cgroup is entered by the `sh` prefix and emptied
by `cgroup.kill`, processes that left the process group included. On v1, a fork bomb is
refused at `pids.max` and the cgroup's counter says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.sandbox.cgroups import (
    MOUNTINFO,
    CgroupHost,
    CommandCgroup,
    find_cgroup_host,
    parse_mounts,
)
from opus.sandbox.limits import Limits
from tests.sandbox.probes import FORKER

WAIT_S = 20.0
SRC = Path(__file__).resolve().parents[2] / "src"


def _v2_mount() -> Path | None:
    mounts = [m for m in parse_mounts(MOUNTINFO.read_text()) if m.version == 2 and m.root == "/"]
    return mounts[0].mountpoint if mounts else None


@pytest.fixture
def v2_subtree() -> Iterator[Path]:
    """A fresh cgroup under the v2 mount's root; emptied and removed afterwards."""
    mount = _v2_mount()
    if mount is None or not os.access(mount, os.W_OK):
        pytest.skip("no writable cgroup v2 hierarchy here")
    path = mount / f"opus-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        for leaf in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
            if leaf.is_dir():
                _empty_and_remove(leaf)
        _empty_and_remove(path)


def _empty_and_remove(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while path.exists():
        (path / "cgroup.kill").write_text("1")
        try:
            path.rmdir()
        except OSError:
            assert time.monotonic() < deadline, f"{path} stayed busy"
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


PROBE = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
Path(sys.argv[1], "cgroup.procs").write_text(str(os.getpid()))
from opus.sandbox import cgroups
memberships = cgroups.parse_memberships(cgroups.PROC_CGROUP.read_text())
mounts = cgroups.parse_mounts(cgroups.MOUNTINFO.read_text())
host = cgroups._probe()
print(json.dumps({
    "own_v2": str(cgroups._own_dir(2, "", memberships, mounts)),
    "controllers": Path(sys.argv[1], "cgroup.controllers").read_text().split(),
    "v2_host": cgroups._v2_host(memberships, mounts) is not None,
    "host": None if host is None else [host.version, str(host.pids)],
}))
"""


def test_a_process_in_a_live_v2_cgroup_is_found_there_and_falls_back_without_pids(
    v2_subtree: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(v2_subtree), str(SRC)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["own_v2"] == str(v2_subtree), "found from its own /proc files"
    if "pids" in seen["controllers"]:
        pytest.skip("v2 offers pids here: the v2 path itself applies (not a hybrid host)")
    assert seen["v2_host"] is False, "no pids controller in v2: not used"
    v1 = find_cgroup_host()
    expected = None if v1 is None or v1.version != 1 else [1, str(v1.pids)]
    assert seen["host"] == expected, seen


def test_a_v2_command_cgroup_is_entered_and_killed_whole(v2_subtree: Path) -> None:
    host = CgroupHost(2, v2_subtree, None)  # no controllers: membership and cgroup.kill
    group = CommandCgroup.create(host, None)
    assert group is not None
    command = "setsid sleep 60 & sleep 60 & echo ready; wait"
    proc = subprocess.Popen(
        [*group.enter_argv(), "/bin/sh", "-c", command], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        procs = group.dirs[0] / "cgroup.procs"
        deadline = time.monotonic() + WAIT_S
        while len(members := [int(p) for p in procs.read_text().split()]) < 3:
            assert time.monotonic() < deadline, members
            time.sleep(0.02)
        assert proc.pid in members, "the prefix moved the command itself, then exec'd it"

        group.remove()

        assert not group.dirs[0].exists()
        proc.wait(timeout=WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while any(_alive(pid) for pid in members):
            assert time.monotonic() < deadline, [p for p in members if _alive(p)]
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()


def test_on_v1_a_fork_bomb_is_refused_at_pids_max_and_counted(tmp_path: Path) -> None:
    host = find_cgroup_host()
    if host is None or host.version != 1:
        pytest.skip("no writable cgroup v1 pids hierarchy here")
    group = CommandCgroup.create(host, Limits(max_processes=20, max_memory_mb=256,
                                              max_file_mb=10, max_cpu_s=10))
    assert group is not None
    try:
        done = subprocess.run(
            [*group.enter_argv(), sys.executable, "-c", FORKER],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        counters = group.counters()
    finally:
        group.remove()
    print(done.stdout, counters)
    forked = int(done.stdout.split("forked")[1].split(maxsplit=1)[0])
    assert 10 < forked < 20, "refused at 20 processes: python and its children"
    assert counters.pids_refused > 0
    assert not group.dirs[0].exists()
