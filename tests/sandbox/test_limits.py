"""Resource limits: escape probes against the real bwrap sandbox, and naming the limit hit."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.sandbox import BwrapSandbox, limits_in_force, sandbox_for
from opus.sandbox.bwrap import bwrap_argv
from opus.sandbox.limits import CgroupCounters, Limits, diagnose, find_prlimit, rlimit_argv
from opus.sandbox.process import ShellRunner
from opus.seams import CommandResult
from tests.sandbox.conftest import needs_bwrap
from tests.sandbox.probes import FORKER

SMALL = Limits(max_processes=64, max_memory_mb=256, max_file_mb=20, max_cpu_s=2)
NOTE = "[opus sandbox] command stopped: hit sandbox."


def limited(kind: str, limits: Limits = SMALL) -> SandboxConfig:
    return SandboxConfig(
        kind=kind,  # type: ignore[arg-type]
        max_processes=limits.max_processes,
        max_memory_mb=limits.max_memory_mb,
        max_file_mb=limits.max_file_mb,
        max_cpu_s=limits.max_cpu_s,
    )


def small_sandbox(limits: Limits = SMALL) -> BwrapSandbox:
    sandbox = sandbox_for(limited("bwrap", limits))
    assert isinstance(sandbox, BwrapSandbox)
    return sandbox


def processes_enforced() -> bool:
    complete, _ = limits_in_force(SandboxConfig())
    return complete


# --- naming the limit (pure) ---


def test_rlimit_argv_sets_every_limit_in_bytes() -> None:
    argv = rlimit_argv("/usr/bin/prlimit", SMALL)
    assert argv == [
        "/usr/bin/prlimit",
        "--nproc=64",
        f"--data={256 * 1024 * 1024}",
        f"--fsize={20 * 1024 * 1024}",
        "--cpu=2:7",
        "--",
    ]


@pytest.mark.parametrize(
    ("exit_code", "output", "counters", "named"),
    [
        (137, "", CgroupCounters(oom_kills=1), "max_memory_mb (256 MB)"),
        (124, "", CgroupCounters(pids_refused=40), "max_processes (64 processes"),
        (153, "", None, "max_file_mb (20 MB)"),
        (-signal.SIGXFSZ, "", None, "max_file_mb"),
        (0, "bash: line 1: 9 File size limit exceeded  dd if=/dev/zero of=big", None,
         "max_file_mb"),
        (152, "", None, "max_cpu_s (2 s"),
        (1, "Traceback (most recent call last):\nMemoryError\n", None, "max_memory_mb"),
        (1, "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
         None, "max_memory_mb"),
        (254, "bash: fork: retry: Resource temporarily unavailable\n", None, "max_processes"),
        (1, "BlockingIOError: [Errno 11] Resource temporarily unavailable", None,
         "max_processes"),
    ],
)
def test_diagnose_names_the_limit(
    exit_code: int, output: str, counters: CgroupCounters | None, named: str
) -> None:
    note = diagnose(exit_code, output, SMALL, counters)
    assert note is not None
    assert f"hit sandbox.{named}" in note
    assert "opus.toml" in note


@pytest.mark.parametrize(
    ("exit_code", "output"),
    [
        (0, "test_raises_memory_error PASSED\nMemoryError expected and seen\n"),
        (1, "AssertionError: 1 != 2\n"),
        (137, "Killed\n"),  # killed, but no cgroup says it was ours
        (0, ""),
    ],
)
def test_diagnose_stays_silent_without_evidence(exit_code: int, output: str) -> None:
    assert diagnose(exit_code, output, SMALL) is None


# --- escape probes (real bwrap) ---

@needs_bwrap
@pytest.mark.bwrap
@pytest.mark.skipif(
    not processes_enforced(), reason="root without a writable cgroup: see `opus doctor`"
)
def test_fork_bomb_stops_at_max_processes_while_another_command_completes(
    worktree: Path,
) -> None:
    probe = "echo $(( $(ls /proc | grep -c '^[0-9]') )) > peak; "
    bomb_cmd = f"for i in $(seq 2000); do sleep 20 & done; {probe} wait"
    result = run_beside_another(worktree, bomb_cmd, timeout_s=6, head_start_s=1.5)
    print("bomb:", result.exit_code, f"{result.duration_s:.1f}s", result.output[-300:])
    assert result.output.rstrip().endswith("in opus.toml")
    assert "hit sandbox.max_processes (64 processes at once)" in result.output
    if (worktree / "peak").exists():  # written once the loop gave up forking
        assert int((worktree / "peak").read_text()) <= SMALL.max_processes + 2


def run_beside_another(
    worktree: Path, runaway: str, *, timeout_s: float, head_start_s: float = 0.5
) -> CommandResult:
    """Run `runaway` in one sandbox and, once it had `head_start_s`, an ordinary command
    in another; the ordinary one must complete. Returns the runaway's result."""
    found: dict[str, CommandResult] = {}

    def run() -> None:
        found["result"] = small_sandbox().run(runaway, worktree=worktree, timeout_s=timeout_s)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(head_start_s)
    other_wt = worktree.parent / "other"
    other_wt.mkdir()
    other = small_sandbox().run(
        "python3 -c 'import subprocess; print(subprocess.run([\"echo\", \"fine\"], "
        "capture_output=True, text=True).stdout)'",
        worktree=other_wt,
        timeout_s=30,
    )
    thread.join(timeout=timeout_s + 30)
    assert other.exit_code == 0, other.output
    assert "fine" in other.output
    return found["result"]


@needs_bwrap
@pytest.mark.bwrap
def test_a_4_gib_allocation_stops_at_max_memory_mb_while_another_command_completes(
    worktree: Path,
) -> None:
    result = run_beside_another(
        worktree,
        "python3 -c 'b = bytearray(4 << 30); b[::4096] = b\"x\" * len(b[::4096]); print(\"got\")'",
        timeout_s=60,
    )
    print(result.exit_code, result.output[-300:])
    assert result.exit_code != 0
    assert "got" not in result.output
    assert result.output.endswith(
        "hit sandbox.max_memory_mb (256 MB); use less memory, or raise "
        "sandbox.max_memory_mb in opus.toml\n"
    )


@needs_bwrap
@pytest.mark.bwrap
def test_a_4_gib_allocation_stops_at_the_default_limit(worktree: Path) -> None:
    cfg = SandboxConfig()
    result = sandbox_for(cfg).run(
        "python3 -c 'b = bytearray(4 << 30); print(\"got\")'", worktree=worktree, timeout_s=60
    )
    assert "got" not in result.output
    assert f"hit sandbox.max_memory_mb ({cfg.max_memory_mb} MB)" in result.output


@needs_bwrap
@pytest.mark.bwrap
def test_many_small_allocations_across_processes_stop_too(worktree: Path) -> None:
    # Each process stays under the per-process rlimit; together they exceed it.
    script = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        hoard = [bytearray(b'x' * (1 << 20)) for _ in range(120)]\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "codes = [os.waitpid(pid, 0)[1] for pid in kids]\n"
        "raise SystemExit(1 if any(codes) else 0)\n"
    )
    (worktree / "hoard.py").write_text(script)
    result = small_sandbox().run("python3 hoard.py", worktree=worktree, timeout_s=60)
    print(result.exit_code, result.output[-300:])
    if not limits_in_force(SandboxConfig())[1].count("cgroup"):
        pytest.skip("no cgroup here: memory is capped per process only (designs/sandbox.md)")
    assert result.exit_code != 0
    assert "hit sandbox.max_memory_mb (256 MB)" in result.output


@needs_bwrap
@pytest.mark.bwrap
def test_a_huge_file_stops_at_max_file_mb_while_another_command_completes(
    worktree: Path,
) -> None:
    result = run_beside_another(
        worktree, "head -c 2G /dev/zero > huge.bin; echo exit=$?", timeout_s=60, head_start_s=0.2
    )
    print(result.output[-300:])
    assert (worktree / "huge.bin").stat().st_size == SMALL.max_file_mb * 1024 * 1024
    assert "hit sandbox.max_file_mb (20 MB)" in result.output


@needs_bwrap
@pytest.mark.bwrap
def test_a_huge_file_in_tmp_stops_too(worktree: Path) -> None:
    result = small_sandbox().run(
        "python3 -c \"f = open('/tmp/big', 'wb'); [f.write(bytes(1 << 20)) for _ in range(300)]\"",
        worktree=worktree,
        timeout_s=60,
    )
    assert result.exit_code != 0
    assert "hit sandbox." in result.output


@needs_bwrap
@pytest.mark.bwrap
def test_a_cpu_hog_stops_at_max_cpu_s(worktree: Path) -> None:
    started = time.monotonic()
    result = small_sandbox().run("python3 -c 'while True: pass'", worktree=worktree, timeout_s=60)
    elapsed = time.monotonic() - started
    print(f"cpu hog stopped after {elapsed:.1f}s wall")
    assert not result.timed_out
    assert elapsed < 30
    assert "hit sandbox.max_cpu_s (2 s of CPU per process)" in result.output


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_ordinary_commands_are_untouched_by_the_limits(worktree: Path, kind: str) -> None:
    runner = small_sandbox() if kind == "bwrap" else none_runner()
    result = runner.run(
        "python3 -c 'x = bytearray(50 << 20); print(len(x))'; head -c 5M /dev/zero > f; "
        "stat -c %s f; for i in 1 2 3 4 5; do true & done; wait; echo done",
        worktree=worktree,
        timeout_s=60,
    )
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(50 << 20), str(5 << 20), "done"]
    assert NOTE not in result.output


@needs_bwrap
@pytest.mark.bwrap
def test_the_owner_process_is_not_limited(worktree: Path) -> None:
    # Limits go on the command's process tree only; opus's own stay as they were.
    before = [resource.getrlimit(r) for r in (resource.RLIMIT_NPROC, resource.RLIMIT_DATA)]
    small_sandbox().run("true", worktree=worktree, timeout_s=20)
    after = [resource.getrlimit(r) for r in (resource.RLIMIT_NPROC, resource.RLIMIT_DATA)]
    assert after == before




@needs_bwrap
@pytest.mark.bwrap
@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to drop root"
)
def test_as_a_normal_user_the_process_rlimit_counts_each_sandbox_alone(outside: Path) -> None:
    """The rlimit path (no cgroup, not root): two sandboxes of one uid, separate counts."""
    bwrap, prlimit = shutil.which("bwrap"), find_prlimit()
    assert bwrap is not None and prlimit is not None
    limits = Limits(max_processes=40, max_memory_mb=512, max_file_mb=10, max_cpu_s=30)
    outside.chmod(0o777)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    prefix = drop if os.geteuid() == 0 else []

    def start(name: str, command: str) -> subprocess.Popen[str]:
        wt = outside / name
        wt.mkdir(mode=0o777)
        wt.chmod(0o777)
        (wt / "forker.py").write_text(FORKER)
        argv = bwrap_argv(
            bwrap, command, worktree=wt, writable=True, network=False, home=None,
            state_dir=None, limits=limits, prlimit=prlimit,
        )  # fmt: skip
        return subprocess.Popen(
            [*prefix, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    first = start("a", "/usr/bin/python3 forker.py")
    second = start("b", "/usr/bin/python3 forker.py")
    outputs = [proc.communicate(timeout=60)[0] for proc in (first, second)]
    print(outputs)
    counts = [int(out.split("forked")[1].split()[0]) for out in outputs]
    # Each sandbox gets close to its own 40 (its shell and python count too), at once.
    assert all(30 <= count < limits.max_processes for count in counts), outputs


# --- sandbox.kind = "none": the same limits, without a namespace ---


def none_runner(limits: Limits = SMALL) -> ShellRunner:
    runner = sandbox_for(limited("none", limits))
    assert isinstance(runner, ShellRunner) and not isinstance(runner, BwrapSandbox)
    return runner


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("python3 -c 'b = bytearray(4 << 30); print(\"got\")'", "max_memory_mb (256 MB)"),
        ("head -c 2G /dev/zero > huge.bin", "max_file_mb (20 MB)"),
        ("python3 -c 'while True: pass'", "max_cpu_s (2 s of CPU per process)"),
    ],
    ids=["memory", "file", "cpu"],
)
def test_without_bwrap_the_rlimits_hold_too(worktree: Path, command: str, named: str) -> None:
    result = none_runner().run(command, worktree=worktree, timeout_s=60)
    print(result.exit_code, result.output[-300:])
    assert not result.timed_out and result.exit_code != 0
    assert "got" not in result.output
    assert f"{NOTE}{named}" in result.output
    if (worktree / "huge.bin").exists():
        assert (worktree / "huge.bin").stat().st_size == SMALL.max_file_mb * 1024 * 1024


@pytest.mark.skipif(
    not processes_enforced(), reason="root without a writable cgroup: see `opus doctor`"
)
def test_without_bwrap_a_fork_bomb_stops_at_max_processes(worktree: Path) -> None:
    result = none_runner().run(
        "for i in $(seq 2000); do sleep 20 & done; wait", worktree=worktree, timeout_s=8
    )
    print(result.exit_code, f"{result.duration_s:.1f}s", result.output[-300:])
    assert "hit sandbox.max_processes (64 processes at once)" in result.output
