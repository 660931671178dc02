"""`sandbox.kind = "none"`: the process limit counts the command's processes, not the user's.

Real commands, as an unprivileged uid (a forked child drops root, since the kernel
never holds root to `RLIMIT_NPROC`), beside dozens of other processes of that uid. The
uid is one no account and no other process has, so other programs on the host (other
test runs dropping to `nobody`) cannot move the user-wide count under the test.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opus.config import SandboxConfig
from opus.sandbox import limits_in_force
from opus.sandbox.limits import Limits
from opus.sandbox.nproc import Counting, counting, own_namespace_argv, user_processes
from opus.sandbox.process import ShellRunner
from tests.sandbox.probes import FORKER

LIMITS = Limits(max_processes=40, max_memory_mb=512, max_file_mb=10, max_cpu_s=30)
OTHERS = 60
"""Processes the user runs besides the commands: more than the limit itself."""
CHILD_WAIT_S = 90.0


def _unused_uid() -> int:
    for uid in range(42000 + os.getpid() % 10000, 60000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if user_processes(uid) == 0:
                return uid
    raise AssertionError("no unused uid between 42000 and 60000")


def as_normal_user(work: Callable[[], Any]) -> Any:
    """`work()` in a forked child that is not root (an unused uid when the test runs as
    root); its JSON-able result, or the child's error re-raised here."""
    uid = _unused_uid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            payload = {"result": work()}
        except BaseException as exc:  # reported to the parent
            payload = {"error": repr(exc)}
        os.write(write, json.dumps(payload).encode())
        os._exit(0)
    os.close(write)
    box: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: box.update(data=_read_all(read)))
    reader.start()
    reader.join(CHILD_WAIT_S)
    if reader.is_alive():
        os.kill(pid, signal.SIGKILL)
        reader.join(5)
    os.waitpid(pid, 0)
    data = json.loads(box.get("data") or b'{"error": "the child said nothing in time"}')
    if "error" in data:
        raise AssertionError(f"in the child: {data['error']}")
    return data["result"]


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the unprivileged child can write (under /var/tmp: /tmp is private)."""
    path = Path("/var/tmp") / f"opus-nproc-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _others(count: int) -> subprocess.Popen[bytes]:
    """`count` sleeping processes of this user, as another program of theirs would run."""
    return subprocess.Popen(
        ["/bin/sh", "-c", f"for i in $(seq {count}); do sleep 60 & done; wait"],
        start_new_session=True,
    )


def _wait_for_processes(uid: int, at_least: int) -> None:
    deadline = time.monotonic() + 20
    while user_processes(uid) < at_least:
        assert time.monotonic() < deadline, "the other processes never started"
        time.sleep(0.05)


def _forkers(shared: Path, names: list[str], *, others_meanwhile: int = 0) -> dict[str, Any]:
    """Run the forker in `names` commands at once (no cgroup, kind "none"), the user
    running `OTHERS` more processes (and `others_meanwhile` started as they begin)."""
    runner = ShellRunner(output_cap_bytes=100_000, limits=LIMITS, cgroup_host=None)
    uid = os.geteuid()
    others = _others(OTHERS)
    later: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_processes(uid, OTHERS)
        found: dict[str, str] = {}

        def run(name: str) -> None:
            wt = shared / name
            wt.mkdir()
            (wt / "forker.py").write_text(FORKER)
            command = "sleep 1; /usr/bin/python3 forker.py"
            found[name] = runner.run(command, worktree=wt, timeout_s=60).output

        threads = [threading.Thread(target=run, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        if others_meanwhile:
            time.sleep(0.3)  # the commands started; the forker waits a second
            later = _others(others_meanwhile)
        for thread in threads:
            thread.join(70)
        return {"how": counting(has_cgroup=False).value, "outputs": found}
    finally:
        for proc in (others, later):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _forked(output: str) -> int:
    assert "forked" in output, output
    return int(output.split("forked")[1].split(maxsplit=1)[0])


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_each_command_counts_its_own_processes_beside_the_users_others(shared: Path) -> None:
    result = as_normal_user(lambda: _forkers(shared, ["a", "b"], others_meanwhile=30))
    if result["how"] != Counting.NAMESPACE.value:
        pytest.skip("unshare cannot make a user namespace here: see the fallback test")
    counts = [_forked(result["outputs"][name]) for name in ("a", "b")]
    print(counts)
    # Each command gets close to its own 40 (its shell and python count too), both at
    # once, although the user runs 90 other processes, 30 of them started meanwhile.
    assert all(30 <= count < LIMITS.max_processes for count in counts), result


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_without_a_user_namespace_the_limit_is_added_to_what_the_user_runs(
    shared: Path,
) -> None:
    def without_unshare() -> dict[str, Any]:
        # A PATH without `unshare` (and so no namespace of the command's own).
        bare = shared / "bin"
        bare.mkdir()
        for tool in ("sh", "sleep", "seq", "prlimit", "bash"):
            found = shutil.which(tool)
            assert found is not None
            (bare / tool).symlink_to(found)
        os.environ["PATH"] = str(bare)
        assert own_namespace_argv() is None
        return _forkers(shared, ["alone"])

    result = as_normal_user(without_unshare)
    assert result["how"] == Counting.USER.value
    # 60 processes of the user already run, more than the limit: the command still gets
    # its 40 on top, not a refusal at its first fork.
    assert 30 <= _forked(result["outputs"]["alone"]) < LIMITS.max_processes, result


def _doctor_line() -> str:
    return limits_in_force(SandboxConfig(kind="none", max_processes=40))[1]


def test_doctor_names_how_the_process_limit_counts() -> None:
    line, namespace = as_normal_user(lambda: (_doctor_line(), own_namespace_argv() is not None))
    expected = (
        "processes: 40 processes per command, counted in a user namespace of its own"
        if namespace
        else "processes: the process rlimit counts all the opus user's processes and threads: "
        "it is set at what the user runs at each command's start plus 40"
    )
    assert expected in line, line
    if os.geteuid() == 0:
        from opus.sandbox.cgroups import find_cgroup_host

        line = _doctor_line()
        expected = (
            "processes: 40 processes per command by its cgroup's pids.max"
            if find_cgroup_host() is not None
            else "sandbox.max_processes is NOT enforced"
        )
        assert expected in line, line


def test_with_a_cgroup_no_user_wide_process_rlimit_is_set(tmp_path: Path) -> None:
    if os.geteuid() != 0 and own_namespace_argv() is not None:
        pytest.skip("a normal user with unshare counts in a namespace instead")
    from opus.sandbox.cgroups import find_cgroup_host

    host = find_cgroup_host()
    if host is None:
        pytest.skip("this host gives opus no writable cgroup")
    runner = ShellRunner(output_cap_bytes=100_000, limits=LIMITS, cgroup_host=host)
    result = runner.run("grep '^Max processes' /proc/self/limits; cat /proc/self/cgroup",
                        worktree=tmp_path, timeout_s=30)
    own = [line for line in Path("/proc/self/limits").read_text().splitlines()
           if line.startswith("Max processes")]
    print(result.output)
    assert own and own[0] in result.output, "the command keeps opus's own process rlimit"
    assert "opus-cmd-" in result.output, "and is counted by its cgroup instead"
