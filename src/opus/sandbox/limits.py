"""Resource limits of one sandboxed command, and naming the one a failed command hit.

Two layers (see designs/sandbox.md, "Resource limits"):

- **rlimits** set by `prlimit` inside the sandbox, right before the shell: processes
  (`RLIMIT_NPROC`, counted per user namespace, so per sandbox when bwrap makes one —
  the kernel exempts real root from it), data memory per process (`RLIMIT_DATA`:
  heap and private mappings, not the address-space reservations of Go, V8, the JVM or
  sanitizers), file size (`RLIMIT_FSIZE`) and CPU seconds (`RLIMIT_CPU`, SIGXCPU then
  SIGKILL five seconds later).
- **a cgroup per command** (`sandbox/cgroups.py`) where the host lets opus make one:
  `pids.max` and the memory limit for the command as a whole, enforced for root too.

`diagnose` is pure: from the exit code, the output and the cgroup's counters it names
the limit a command ran into, so the agent reads "hit sandbox.max_memory_mb (256 MB)"
instead of a bare "Killed".
"""

from __future__ import annotations

import re
import shutil
import signal
from dataclasses import dataclass, replace

from opus.config import SandboxConfig
from opus.seams import CommandResult

MIB = 1024 * 1024
CPU_KILL_GRACE_S = 5
"""Seconds between SIGXCPU (soft CPU limit) and SIGKILL (hard limit)."""
SANDBOX_NOTE_PREFIX = "[opus sandbox] "
"""How a line opus adds to a command's output starts."""
LIMIT_NOTE_PREFIX = f"{SANDBOX_NOTE_PREFIX}command stopped: "
"""How the last output line naming a limit starts (`with_limit_note`)."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use (from `sandbox.max_*`)."""

    max_processes: int
    max_memory_mb: int
    max_file_mb: int
    max_cpu_s: int
    max_worktree_mb: int = 20480

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> Limits:
        return cls(
            max_processes=cfg.max_processes,
            max_memory_mb=cfg.max_memory_mb,
            max_file_mb=cfg.max_file_mb,
            max_cpu_s=cfg.max_cpu_s,
            max_worktree_mb=cfg.max_worktree_mb,
        )

    def describe(self) -> str:
        return (
            f"{self.max_processes} processes, {self.max_memory_mb} MB memory, "
            f"{self.max_file_mb} MB files, {self.max_cpu_s} s CPU, "
            f"{self.max_worktree_mb} MB worktree"
        )


@dataclass(frozen=True)
class CgroupCounters:
    """What a command's cgroup saw: forks refused at `pids.max`, and OOM kills."""

    pids_refused: int = 0
    oom_kills: int = 0


def find_prlimit() -> str | None:
    """The `prlimit` executable (util-linux), or None."""
    return shutil.which("prlimit")


def rlimit_argv(prlimit: str, limits: Limits) -> list[str]:
    """The prefix that runs a command under `limits`' rlimits (soft = hard but for CPU)."""
    cpu_hard = limits.max_cpu_s + CPU_KILL_GRACE_S
    return [
        prlimit,
        f"--nproc={limits.max_processes}",
        f"--data={limits.max_memory_mb * MIB}",
        f"--fsize={limits.max_file_mb * MIB}",
        f"--cpu={limits.max_cpu_s}:{cpu_hard}",
        "--",
    ]


def _killed_by(exit_code: int, sig: signal.Signals) -> bool:
    # A shell reports a child killed by a signal as 128 + n; Popen as -n.
    return exit_code in (128 + sig.value, -sig.value)


# What programs print when an rlimit refuses them (bash, coreutils, Python, node, Go, C++).
_PROCESS_TEXT = re.compile(
    r"fork: (retry: )?Resource temporarily unavailable|can't fork|Cannot fork"
    r"|BlockingIOError: \[Errno 11\]|pthread_create failed",
    re.IGNORECASE,
)
_MEMORY_TEXT = re.compile(
    r"MemoryError|Cannot allocate memory|out of memory|std::bad_alloc|memory exhausted",
    re.IGNORECASE,
)
_FILE_TEXT = re.compile(r"File size limit exceeded|File too large", re.IGNORECASE)
_CPU_TEXT = re.compile(r"CPU time limit exceeded", re.IGNORECASE)


def diagnose(
    exit_code: int, output: str, limits: Limits, counters: CgroupCounters | None = None
) -> str | None:
    """The limit a command with this `exit_code` and `output` ran into, or None.

    The cgroup's counters, and the shell's words for SIGXFSZ and SIGXCPU, are facts
    worth telling even when a later command made the exit code 0; an allocation or fork
    error in the output counts only when the command failed (a test suite may print
    "MemoryError" on purpose).
    """
    counters = counters or CgroupCounters()
    if counters.oom_kills:
        return _memory(limits)
    if counters.pids_refused:
        return _processes(limits)
    if _killed_by(exit_code, signal.SIGXFSZ) or _FILE_TEXT.search(output):
        return (
            f"hit sandbox.max_file_mb ({limits.max_file_mb} MB): a file may not grow "
            "beyond that; write less, or raise sandbox.max_file_mb in opus.toml"
        )
    if _killed_by(exit_code, signal.SIGXCPU) or _CPU_TEXT.search(output):
        return (
            f"hit sandbox.max_cpu_s ({limits.max_cpu_s} s of CPU per process); make the "
            "work smaller, or raise sandbox.max_cpu_s in opus.toml"
        )
    if exit_code == 0:
        return None
    if _MEMORY_TEXT.search(output):
        return _memory(limits)
    if _PROCESS_TEXT.search(output):
        return _processes(limits)
    return None


def _memory(limits: Limits) -> str:
    return (
        f"hit sandbox.max_memory_mb ({limits.max_memory_mb} MB); use less memory, "
        "or raise sandbox.max_memory_mb in opus.toml"
    )


def _processes(limits: Limits) -> str:
    return (
        f"hit sandbox.max_processes ({limits.max_processes} processes at once); start "
        "fewer processes, or raise sandbox.max_processes in opus.toml"
    )


def with_limit_note(result: CommandResult, note: str | None) -> CommandResult:
    """`result` with a last line naming the limit it hit (the tail is what gets read)."""
    if note is None:
        return result
    output = result.output if result.output.endswith("\n") or not result.output else (
        result.output + "\n"
    )
    return replace(result, output=f"{output}{LIMIT_NOTE_PREFIX}{note}\n")
