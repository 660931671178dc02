"""A cgroup per sandboxed command, where the host lets opus make one.

rlimits cannot cap a command as a whole (each process gets its own), and the kernel
does not enforce `RLIMIT_NPROC` for root. A cgroup can: `pids.max` refuses the fork
past the limit and the memory limit OOM-kills inside the command only, for root too.

Two kinds of host are used (see designs/sandbox.md, "Resource limits"):

- **cgroup v2, delegated**: opus's own cgroup is writable and offers the `pids`
  controller (systemd `Delegate=yes`). v2 forbids processes in a cgroup whose
  controllers are enabled for children, so when opus is alone in its cgroup it moves
  itself into a leaf `opus-daemon` first, as systemd's delegation docs recommend.
- **cgroup v1**: the `pids` (and `memory`) hierarchies are writable where opus's own
  cgroup sits (typically opus running as root in a container).

Otherwise `find_cgroup_host()` is None and only the rlimits apply. Nothing here may
take the daemon down: a cgroup that cannot be made leaves the command to the rlimits.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opus.sandbox.limits import MIB, CgroupCounters, Limits

log = logging.getLogger(__name__)

PROC_CGROUP = Path("/proc/self/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")
DAEMON_LEAF = "opus-daemon"
PREFIX = "opus-cmd-"
REMOVE_WAIT_S = 3.0


@dataclass(frozen=True)
class Membership:
    """One line of /proc/self/cgroup: a hierarchy's controllers and the cgroup's path."""

    controllers: frozenset[str]
    path: str


@dataclass(frozen=True)
class CgroupMount:
    """A mounted cgroup hierarchy: v2 (`controllers` empty) or v1 with its controllers."""

    version: int
    controllers: frozenset[str]
    root: str
    mountpoint: Path


@dataclass(frozen=True)
class CgroupHost:
    """Where command cgroups are made: one dir (v2), or one per v1 controller."""

    version: int
    pids: Path
    memory: Path | None

    def describe(self) -> str:
        kinds = "pids, memory" if self.memory is not None else "pids"
        # v1 is exercised by the tests on a real host; on v2 so far only finding the
        # cgroup, entering it and cgroup.kill (tests/sandbox/test_cgroups_live.py).
        untried = ", v2 limits not yet tried on a live host" if self.version == 2 else ""
        return f"cgroup v{self.version} ({kinds}{untried}) under {self.pids}"


def parse_memberships(text: str) -> list[Membership]:
    """/proc/<pid>/cgroup lines `id:controllers:path` (`0::path` is the v2 one)."""
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            names = frozenset(name for name in parts[1].split(",") if name)
            found.append(Membership(names, parts[2]))
    return found


def parse_mounts(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts in a /proc/<pid>/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields, _, tail = line.partition(" - ")
        head, rest = fields.split(), tail.split()
        if len(head) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(rest[2].split(","))
        version = 2 if rest[0] == "cgroup2" else 1
        controllers = frozenset() if version == 2 else options
        mounts.append(CgroupMount(version, controllers, head[3], Path(_unescape(head[4]))))
    return mounts


def _unescape(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def cgroup_dir(mount: CgroupMount, path: str) -> Path | None:
    """Where the cgroup `path` of `mount`'s hierarchy is in the filesystem, if visible."""
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    return mount.mountpoint / path[len(root) :].lstrip("/")


def _own_dir(version: int, controller: str, memberships: list[Membership],
             mounts: list[CgroupMount]) -> Path | None:
    for member in memberships:
        wanted = not member.controllers if version == 2 else controller in member.controllers
        if not wanted:
            continue
        for mount in mounts:
            if mount.version == version and (version == 2 or controller in mount.controllers):
                found = cgroup_dir(mount, member.path)
                if found is not None and found.is_dir():
                    return found
    return None


def _writable(path: Path | None) -> bool:
    return path is not None and os.access(path, os.W_OK)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _v2_host(memberships: list[Membership], mounts: list[CgroupMount]) -> CgroupHost | None:
    own = _own_dir(2, "", memberships, mounts)
    if own is None:
        return None
    # A job process of a daemon that already moved itself sits in the daemon's leaf.
    parent = own.parent if own.name == DAEMON_LEAF else own
    if not _writable(parent) or "pids" not in _read(parent / "cgroup.controllers").split():
        return None
    wanted = [c for c in ("pids", "memory") if c in _read(parent / "cgroup.controllers").split()]
    if not _enable(parent, wanted):
        return None
    memory = parent if "memory" in wanted else None
    return CgroupHost(2, parent, memory)


def _enable(parent: Path, controllers: Sequence[str]) -> bool:
    """Enable `controllers` for `parent`'s children, moving opus into a leaf if it must."""
    enabled = _read(parent / "cgroup.subtree_control").split()
    if all(c in enabled for c in controllers):
        return True
    line = " ".join(f"+{c}" for c in controllers)
    try:
        (parent / "cgroup.subtree_control").write_text(line)
        return True
    except OSError:
        pass  # busy: processes live in `parent` itself
    if _read(parent / "cgroup.procs").split() != [str(os.getpid())]:
        return False  # not ours alone: moving others around is not opus's business
    try:
        leaf = parent / DAEMON_LEAF
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (parent / "cgroup.subtree_control").write_text(line)
    except OSError as exc:
        log.info("cgroup v2 at %s is not usable: %s", parent, exc)
        return False
    return True


def _v1_host(memberships: list[Membership], mounts: list[CgroupMount]) -> CgroupHost | None:
    pids = _own_dir(1, "pids", memberships, mounts)
    if not _writable(pids):
        return None
    assert pids is not None
    memory = _own_dir(1, "memory", memberships, mounts)
    return CgroupHost(1, pids, memory if _writable(memory) else None)


_host_lock = threading.Lock()
_host_cache: dict[str, CgroupHost | None] = {}


def find_cgroup_host() -> CgroupHost | None:
    """The place this process can make command cgroups in, or None (found once)."""
    with _host_lock:
        if "host" not in _host_cache:
            _host_cache["host"] = _probe()
        return _host_cache["host"]


def _probe() -> CgroupHost | None:
    memberships = parse_memberships(_read(PROC_CGROUP))
    mounts = parse_mounts(_read(MOUNTINFO))
    host = _v2_host(memberships, mounts) or _v1_host(memberships, mounts)
    if host is not None and not _can_make_children(host):
        return None
    return host


def _can_make_children(host: CgroupHost) -> bool:
    probe = CommandCgroup.create(host, None)
    if probe is None:
        return False
    probe.remove()
    _remove_stale(host)
    return True


def _remove_stale(host: CgroupHost) -> None:
    """Kill and drop command cgroups of opus processes that died (their pid is gone).

    A command whose owner was killed before bwrap armed `--die-with-parent` would
    otherwise run on; its cgroup still names the dead owner.
    """
    parents = {host.pids} | ({host.memory} if host.memory is not None else set())
    for parent in parents:
        for child in parent.glob(f"{PREFIX}*"):
            owner = child.name.removeprefix(PREFIX).split("-")[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                CommandCgroup(host, [child]).remove()


_names = itertools.count(1)


class CommandCgroup:
    """The cgroup(s) one command runs in: made before it starts, removed after it ends."""

    def __init__(self, host: CgroupHost, dirs: list[Path]) -> None:
        self.host = host
        self.dirs = dirs

    @classmethod
    def create(cls, host: CgroupHost, limits: Limits | None) -> CommandCgroup | None:
        """Make the command's cgroup with `limits`; None (logged) when the host refuses.

        Each new command first sweeps the cgroups of dead owners, so what a killed opus
        left (a bwrap caught mid-setup, see `sandbox/owner.py`) lives until the next
        command anywhere on the host, not until the next restart.
        """
        if limits is not None:
            _remove_stale(host)
        name = f"{PREFIX}{os.getpid()}-{next(_names)}"
        parents = [host.pids] if host.memory in (None, host.pids) else [host.pids, host.memory]
        made = cls(host, [parent / name for parent in parents if parent is not None])
        try:
            for path in made.dirs:
                path.mkdir()
            if limits is not None:
                made._write_limits(limits)
        except OSError as exc:
            log.warning("cannot make a cgroup for a sandboxed command (%s); rlimits only", exc)
            made.remove()
            return None
        return made

    def _write_limits(self, limits: Limits) -> None:
        memory = str(limits.max_memory_mb * MIB)
        pids_dir = self.dirs[0]
        (pids_dir / "pids.max").write_text(str(limits.max_processes))
        if self.host.memory is None:
            return
        mem_dir = self.dirs[-1]
        if self.host.version == 2:
            (mem_dir / "memory.max").write_text(memory)
            self._write_if_present(mem_dir / "memory.swap.max", "0")
        else:
            (mem_dir / "memory.limit_in_bytes").write_text(memory)
            self._write_if_present(mem_dir / "memory.memsw.limit_in_bytes", memory)

    @staticmethod
    def _write_if_present(path: Path, value: str) -> None:
        if path.exists():
            with contextlib.suppress(OSError):
                path.write_text(value)

    def enter_argv(self) -> list[str]:
        """A prefix that moves the process into the cgroup(s), then execs the command.

        The shell execs, so the command keeps the pid `subprocess` gave it (and bwrap's
        `--die-with-parent` still names opus as the parent).
        """
        moves = " && ".join(f'echo $$ > "${i}"' for i in range(1, len(self.dirs) + 1))
        script = f'{moves} && shift {len(self.dirs)} && exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *(str(d / "cgroup.procs") for d in self.dirs)]

    def counters(self) -> CgroupCounters:
        """Forks refused at pids.max and OOM kills so far."""
        pids_refused = _counter(_read(self.dirs[0] / "pids.events"), "max")
        oom = 0
        if self.host.memory is not None:
            mem_dir = self.dirs[-1]
            events = "memory.events" if self.host.version == 2 else "memory.oom_control"
            oom = _counter(_read(mem_dir / events), "oom_kill")
        return CgroupCounters(pids_refused=pids_refused, oom_kills=oom)

    def remove(self) -> None:
        """Kill whatever is still in the cgroup(s) and remove them (bounded wait)."""
        deadline = time.monotonic() + REMOVE_WAIT_S
        for path in reversed(self.dirs):
            while path.exists():
                self._kill_members(path)
                try:
                    path.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s still busy; left for the next start", path)
                        break
                    time.sleep(0.02)

    def _kill_members(self, path: Path) -> None:
        kill_file = path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
            return
        for pid in _read(path / "cgroup.procs").split():
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
