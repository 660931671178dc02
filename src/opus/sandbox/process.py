"""Process control shared by every sandbox kind.

The child runs in its own process group (its own session), so a timeout can kill
everything it started, grandchildren included. Its group is listed in `live_groups()`
while it runs, so whoever stops a job (its job process, or the daemon) can kill every
command of it at once. (No `preexec_fn` parent-death signal here: it would run the
interpreter's at-fork hooks in the child, which close `sandbox.owner`'s pipe before it
is passed; the owner pipe, bwrap's `--die-with-parent` and the job process's subreaper
cover the owner's death instead.) Output (stdout and stderr interleaved)
is read incrementally into a capped buffer that keeps the head and the tail: the head
usually says what ran, the tail says how it ended.
"""

from __future__ import annotations

import contextlib
import copy
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

from opus.errors import SandboxError
from opus.sandbox.cgroups import CgroupHost, CommandCgroup
from opus.sandbox.disk import CHECK_EVERY_S, DiskWatch
from opus.sandbox.environment import parent_environ, scrubbed_env
from opus.sandbox.limits import (
    CgroupCounters,
    Limits,
    diagnose,
    find_prlimit,
    rlimit_argv,
    with_limit_note,
)
from opus.sandbox.nproc import Counting, counting, own_namespace_argv, user_processes
from opus.sandbox.sockets import SocketCover
from opus.seams import CommandResult, Grant

TERM_GRACE_S = 2.0
"""How long a group gets between SIGTERM and SIGKILL."""
DRAIN_S = 1.0
"""After the command exits, how long output from leftovers is still read."""
READ_CHUNK = 65536
TIMEOUT_EXIT_CODE = 124
"""The exit code reported for a timed-out command (as coreutils `timeout` does)."""
SHELL_CANDIDATES = ("/bin/bash", "/usr/bin/bash", "/bin/sh")
START_ATTEMPTS = 12
"""How often a command is started when a host socket its sandbox was to cover vanished
before the sandbox was set up (the command never ran; a fresh cover goes without it).
Other programs' short-lived sockets (a test suite's services, say) can each stop one
start: a few in a row are common on a busy host, a dozen are not."""
RESTART_PAUSE_S = 0.05
"""The pause before starting again after such a stop, times the attempts so far."""


def covers_kept_vanishing(output: str) -> SandboxError:
    """The error when every one of `START_ATTEMPTS` starts stopped in the sandbox's setup
    because a host socket to cover vanished (`output`: the last start's)."""
    return SandboxError(
        f"the sandbox could not start in {START_ATTEMPTS} attempts: host unix sockets it "
        f"was to cover kept vanishing while it was set up (last: {output.strip()[:300]}); "
        "the command did not run"
    )


_live: set[int] = set()
_live_lock = threading.Lock()
_observers: list[Callable[[int], None]] = []


def live_groups() -> list[int]:
    """The process groups of the commands running right now in this process.

    Only groups whose leader is still our child (a zombie counts): its pid cannot have
    been reused by another process, so signalling the group hits only our command.
    """
    with _live_lock:
        return sorted(pgid for pgid in _live if _is_our_child(pgid))


def _is_our_child(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    return len(fields) > 1 and int(fields[1]) == os.getpid()


def observe_groups(callback: Callable[[int], None]) -> None:
    """Call `callback(pgid)` whenever a command's process group starts (a job process
    reports them to the daemon, which kills them if the job process itself is killed)."""
    _observers.append(callback)


def _started(pgid: int) -> None:
    with _live_lock:
        _live.add(pgid)
    for callback in _observers:
        callback(pgid)


def _ended(pgid: int) -> None:
    with _live_lock:
        _live.discard(pgid)


def shell() -> str:
    """The shell commands run in: bash when there is one (agents write bash)."""
    for candidate in SHELL_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return "sh"


class ShellRunner:
    """Runs shell commands in a worktree with a scrubbed environment, capped and timed.

    Satisfies `Sandbox` without any isolation; `BwrapSandbox` wraps the command line.
    With `limits`, every command runs under the rlimits (`prlimit`), in a cgroup of its
    own where `cgroup_host` allows one, and with its worktree's total size watched
    (`sandbox.max_worktree_mb`); a command that hits one gets a last line naming it.
    """

    def __init__(
        self,
        *,
        output_cap_bytes: int,
        environ: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
        limits: Limits | None = None,
        cgroup_host: CgroupHost | None = None,
    ) -> None:
        self.output_cap_bytes = output_cap_bytes
        self.env = scrubbed_env(parent_environ() if environ is None else environ, pass_env)
        self.limits = limits
        self.prlimit = find_prlimit() if limits is not None else None
        self.cgroup_host = cgroup_host
        self._disks: dict[Path, DiskWatch] = {}

    def granting(self, grant: Grant) -> Self:
        """A copy of this runner whose commands also get `grant.env`, past the scrub (the
        caller named these variables for one program); see `opus.seams.Sandbox.granting`.
        Without isolation there is no network to open."""
        widened = copy.copy(self)
        widened.env = {**self.env, **grant.env}
        return widened

    def argv(
        self, command: str, *, worktree: Path, writable: bool, owner_fd: int | None = None,
        has_cgroup: bool = False,
    ) -> list[str]:
        """The command line that runs `command` (under the rlimits, when set).

        Without bwrap's user namespace the process rlimit is counted as `sandbox/nproc.py`
        picks: in a namespace of the command's own, else left to the command's cgroup
        (`has_cgroup`), else over the user's processes (what they run now plus the limit).
        """
        limits = self.limits
        if limits is None or self.prlimit is None:
            return [shell(), "-c", command]
        how = counting(has_cgroup=has_cgroup)
        rlimits = rlimit_argv(self.prlimit, limits)
        if how is Counting.NAMESPACE:
            return [*(own_namespace_argv() or []), *rlimits, shell(), "-c", command]
        if how is Counting.CGROUP:
            rlimits = [arg for arg in rlimits if not arg.startswith("--nproc=")]
        elif how is Counting.USER:
            extra = user_processes(os.geteuid())
            rlimits = rlimit_argv(
                self.prlimit, replace(limits, max_processes=limits.max_processes + extra)
            )
        return [*rlimits, shell(), "-c", command]

    def command_argv(
        self, command: str, *, worktree: Path, writable: bool, has_cgroup: bool = False
    ) -> CommandLine:
        """`argv`, and what else starting it needs (no isolation: no socket cover)."""
        argv = self.argv(command, worktree=worktree, writable=writable, has_cgroup=has_cgroup)
        return CommandLine(argv)

    def run(
        self,
        command: str,
        *,
        worktree: Path,
        timeout_s: float,
        writable: bool = True,
    ) -> CommandResult:
        """Run `command` with `worktree` as cwd; see `opus.seams.Sandbox`.

        In its own cgroup when the host allows one; a command that ran into a limit gets
        a last output line naming it.
        """
        worktree = worktree.resolve()
        group = self._cgroup()
        prefix = group.enter_argv() if group is not None else []
        disk = self._disk_check(worktree, writable)
        try:
            for attempt in range(START_ATTEMPTS):
                line = self.command_argv(
                    command, worktree=worktree, writable=writable, has_cgroup=group is not None
                )
                result = run_in_group(
                    [*prefix, *line.argv],
                    cwd=worktree,
                    env=self.env,
                    timeout_s=timeout_s,
                    cap_bytes=self.output_cap_bytes,
                    pass_fds=line.pass_fds,
                    watch=disk.during if disk is not None else None,
                )
                if line.cover is None or not line.cover.vanished(result.output):
                    break
                time.sleep(RESTART_PAUSE_S * (attempt + 1))
            else:
                raise covers_kept_vanishing(result.output)
            counters = group.counters() if group is not None else None
        finally:
            if group is not None:
                group.remove()
        return self._noted(result, counters, disk)

    def start(self, command: str, *, worktree: Path, writable: bool = True) -> LiveProcess:
        """Start `command` and leave it running; see `opus.seams.Sandbox.start`.

        In a cgroup of its own for the process's lifetime when the host allows one (its
        limits then cover everything the process runs).
        """
        worktree = worktree.resolve()
        group = self._cgroup()
        prefix = group.enter_argv() if group is not None else []
        try:
            line = self.command_argv(
                command, worktree=worktree, writable=writable, has_cgroup=group is not None
            )
            proc = start_in_group(
                [*prefix, *line.argv], cwd=worktree, env=self.env, pass_fds=line.pass_fds
            )
        except BaseException:
            if group is not None:
                group.remove()
            raise
        return LiveProcess(
            proc,
            group.remove if group is not None else None,
            limits=self.limits,
            cgroup=group,
            disk=self._disk_check(worktree, writable),
            cover=line.cover,
        )

    def _cgroup(self) -> CommandCgroup | None:
        if self.cgroup_host is None or self.limits is None:
            return None
        return CommandCgroup.create(self.cgroup_host, self.limits)

    def _disk_check(self, worktree: Path, writable: bool) -> DiskCheck | None:
        if self.limits is None or not writable:
            return None
        watch = self._disks.get(worktree)
        if watch is None or watch.cap_mb != self.limits.max_worktree_mb:
            watch = self._disks[worktree] = DiskWatch(worktree, self.limits.max_worktree_mb)
        return DiskCheck(watch)

    def _noted(
        self, result: CommandResult, counters: CgroupCounters | None, disk: DiskCheck | None
    ) -> CommandResult:
        if self.limits is None:
            return result
        note = diagnose(result.exit_code, result.output, self.limits, counters)
        if note is None and disk is not None:
            note = disk.after()  # once more, now that the command ended
        if note is None:
            return result
        # A limit hit is a command error, even when the shell's last command succeeded.
        return with_limit_note(replace(result, exit_code=result.exit_code or 1), note)


@dataclass(frozen=True)
class CommandLine:
    """How to start one command: its argv, the file descriptors it must inherit, and
    the host sockets its sandbox covers (None: no filesystem isolation to cover with)."""

    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    cover: SocketCover | None = None


@dataclass
class DiskCheck:
    """One command's check of its worktree's total size: during the run and after it.

    A command that starts with the worktree already over the cap was told so before and
    is probably cleaning up: it is not stopped midway, only told again at its end.
    """

    watch: DiskWatch
    note: str | None = None
    """Set once the cap was hit."""
    started_over: bool = False

    def __post_init__(self) -> None:
        self.started_over = self.watch.was_over

    def during(self) -> str | None:
        """While the command runs: the note when it took the worktree over the cap."""
        return None if self.started_over else self.after()

    def after(self) -> str | None:
        """The note when the worktree is over the cap (checked once; then remembered)."""
        if self.note is None:
            self.note = self.watch.note()
        return self.note

    def next_command(self) -> None:
        """A persistent shell's next command starts: check afresh."""
        self.note = None
        self.started_over = self.watch.was_over


@dataclass
class LiveProcess:
    """Implements `opus.seams.SandboxProcess`: a started process and its clean-up."""

    proc: subprocess.Popen[bytes]
    on_stop: Callable[[], None] | None = None
    """Run after the process group is killed (e.g. removing its cgroup)."""
    limits: Limits | None = None
    cgroup: CommandCgroup | None = None
    disk: DiskCheck | None = None
    cover: SocketCover | None = None
    """The host sockets the sandbox was started with covered."""
    _counted: CgroupCounters = field(default_factory=CgroupCounters)

    def stop(self) -> None:
        """Kill the process group, close the pipes, then run `on_stop` (once)."""
        kill_group(self.proc)
        on_stop, self.on_stop = self.on_stop, None
        if on_stop is not None:
            on_stop()

    def over_limit(self) -> str | None:
        """The worktree's size cap, when the running command took the worktree past it."""
        return self.disk.during() if self.disk is not None else None

    def uncovered_sockets(self) -> list[Path]:
        """Host unix sockets reachable from inside that its cover misses (bound since it
        started); empty without a sandbox. One read of /proc/net/unix when none is new."""
        return self.cover.missing(self.proc.pid) if self.cover is not None else []

    def cover_vanished(self, output: str) -> bool:
        """The process never ran its command: `output` is bwrap stopping because a socket
        it was to cover vanished meanwhile (starting again is safe)."""
        return self.cover is not None and self.cover.vanished(output)

    def limit_hit(self, exit_code: int, output: str) -> str | None:
        """The limit the command that just ended in this process ran into, or None.

        The cgroup's counters cover the process's whole life, so only what they counted
        since the last call is this command's.
        """
        if self.limits is None:
            return None
        counters = self._counted
        if self.cgroup is not None:
            now = self.cgroup.counters()
            counters = CgroupCounters(
                pids_refused=now.pids_refused - self._counted.pids_refused,
                oom_kills=now.oom_kills - self._counted.oom_kills,
            )
            self._counted = now
        note = diagnose(exit_code, output, self.limits, counters)
        if self.disk is not None:
            over = self.disk.after()
            self.disk.next_command()  # each command is told again while it stays over
            note = note or over
        return note


class CappedOutput:
    """Bytes kept up to `cap`: the first half as a head, the latest half as a tail."""

    def __init__(self, cap_bytes: int) -> None:
        self._head_cap = cap_bytes // 2
        self._tail_cap = cap_bytes - self._head_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        """Append `chunk`, dropping the middle once the cap is reached."""
        self.total += len(chunk)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > self._tail_cap:
                del self._tail[: len(self._tail) - self._tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._tail)

    def text(self) -> str:
        """The kept output as text, with a marker where bytes were dropped."""
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        dropped = self.total - len(self._head) - len(self._tail)
        return f"{head}\n[... {dropped} bytes of output omitted ...]\n{tail}"


def start_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: int = subprocess.PIPE,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (its own process group), output piped, stderr merged.

    `pass_fds` stay open in the child (the sandbox's owner pipe).
    """
    if not cwd.is_dir():
        raise SandboxError(f"worktree {cwd} is not a directory; recreate the job's worktree")
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        raise SandboxError(f"cannot start {argv[0]!r} in {cwd}: {exc}") from exc
    _started(proc.pid)
    return proc


def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    cap_bytes: int,
    pass_fds: Sequence[int] = (),
    watch: Callable[[], str | None] | None = None,
) -> CommandResult:
    """Run `argv` in a new session; kill its whole group on timeout; capture capped output.

    `watch` is asked about once every `CHECK_EVERY_S` while the command runs; when it
    answers (a limit was hit), the command is stopped as on a timeout, but not reported
    as timed out.
    """
    started = time.monotonic()
    proc = start_in_group(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
    output = CappedOutput(cap_bytes)
    try:
        timed_out = _pump(proc, output, deadline=started + timeout_s, watch=watch)
    finally:
        kill_group(proc)
    exit_code = TIMEOUT_EXIT_CODE if timed_out else proc.returncode
    return CommandResult(
        exit_code=exit_code,
        output=output.text(),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        truncated=output.truncated,
    )


def _pump(
    proc: subprocess.Popen[bytes],
    output: CappedOutput,
    *,
    deadline: float,
    watch: Callable[[], str | None] | None = None,
) -> bool:
    """Read output until EOF; True when the deadline passed first. Stops early (False)
    when `watch` reports a limit hit."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    next_watch = time.monotonic() + CHECK_EVERY_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return True
            if watch is not None and now >= next_watch:
                next_watch = now + CHECK_EVERY_S
                if watch() is not None:
                    return False
            if drain_until is None and proc.poll() is not None:
                # The command is done; background leftovers must not hold us until the
                # deadline, so read what is already there and stop shortly after.
                drain_until = now + DRAIN_S
            if drain_until is not None and now >= drain_until:
                return False
            limit = deadline if drain_until is None else min(deadline, drain_until)
            if selector.select(timeout=min(0.1, limit - now)) and not _read_into(fd, output):
                return _wait_until(proc, deadline)


def _wait_until(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for the exit after EOF; True when the deadline passed first."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return True
    return False


def _read_into(fd: int, output: CappedOutput) -> bool:
    """Move available bytes into `output`; False at EOF."""
    try:
        chunk = os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    output.add(chunk)
    return True


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's group, then SIGKILL whatever is left after a short grace.

    Closes the child's pipes too."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=TERM_GRACE_S if proc.poll() is None else 0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    _ended(proc.pid)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
