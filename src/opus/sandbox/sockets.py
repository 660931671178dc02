"""Host unix sockets a sandboxed command could connect to, and the cover over them.

A filesystem unix socket ignores read-only mounts: connecting needs only its path (and
write permission on the file). So a sandbox covers each live host socket it could see
with `/dev/null` (`bwrap.mount_plan`), as found in `/proc/net/unix` when it starts.
A long-lived sandbox (the agents' persistent shell) asks its `SocketCover` before each
command whether a socket appeared since that the cover misses, and is restarted if so.

Any socket bound since counts, also at a path the cover names: a service that binds
again (unlink, then bind) makes a new socket there, and the host's unlink detached the
`/dev/null` mount inside the sandbox. Connections (accepted or pending) are listed under
their listener's path too; they cannot be connected to and are left out, so a busy
service does not look new at every connection.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opus.sandbox.environment import SANDBOX_TMPDIR

PROC_NET_UNIX = Path("/proc/net/unix")
# Inside the sandbox these are empty tmpfs: a host socket there is out of reach already.
PRIVATE_DIRS: tuple[Path, ...] = (Path(SANDBOX_TMPDIR), Path("/run"))

STREAM_TYPES = ("0001", "0005")
"""SOCK_STREAM and SOCK_SEQPACKET in /proc/net/unix's Type column."""
UNCONNECTED = "01"
"""SS_UNCONNECTED in the St column: a listener, or a socket not yet connected."""
Entry = tuple[str, int]
"""One named socket in /proc/net/unix: (the name it was bound to, its socket inode)."""


def unix_table(proc_net_unix: str) -> frozenset[Entry]:
    """The named sockets of a /proc/net/unix text that can be connected to: listeners and
    datagram sockets, not abstract ones (`@...`) nor connections.

    A name is the path as the binding process passed it: absolute, or relative to that
    process's working directory at the time.
    """
    found = set()
    for line in proc_net_unix.splitlines()[1:]:
        fields = line.split(maxsplit=7)
        if len(fields) < 8 or fields[7].startswith("@") or not fields[6].isdigit():
            continue
        if fields[4] in STREAM_TYPES and fields[5] != UNCONNECTED:
            continue  # a connection, named after its listener
        found.add((fields[7], int(fields[6])))
    return frozenset(found)


def read_unix_table() -> frozenset[Entry]:
    """The named sockets bound in opus's network namespace right now."""
    try:
        return unix_table(PROC_NET_UNIX.read_text(errors="replace"))
    except OSError:
        return frozenset()


def real_path(listed: Path) -> Path | None:
    """Where a listed socket really is: /var/run/x.sock is /run/x.sock (its directory's
    links resolved, not the socket itself). None when that cannot be found out."""
    try:
        return listed.parent.resolve() / listed.name
    except OSError:
        return None


def reachable_sockets(paths: Iterable[Path], worktree: Path) -> list[Path]:
    """Which of the absolute `paths` a sandboxed command could connect to, were they not
    covered: live sockets that stay visible (outside the private /tmp and /run, or inside
    the bound worktree), by their real paths."""
    visible: dict[Path, None] = {}
    for listed in paths:
        path = real_path(listed)
        if path is None:
            continue
        private = any(path.is_relative_to(d) for d in PRIVATE_DIRS)
        if private and not path.is_relative_to(worktree):
            continue
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                visible[path] = None
        except OSError:
            continue  # gone, or in a place opus cannot see either
    return list(visible)


def socket_holders(inodes: set[int], pids: Iterable[int] | None = None) -> dict[int, set[int]]:
    """Which of `pids` (default: every process opus may look into) hold open each of
    the sockets `inodes`."""
    if pids is None:
        pids = (int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit())
    holders: dict[int, set[int]] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and (inode := int(target[8:-1])) in inodes:
                holders.setdefault(inode, set()).add(pid)
    return holders


class RelativeNames:
    """Where sockets bound to a relative name are: joined to the working directory of
    the processes that hold them (where they were bound, unless they moved since).

    Finding the holders reads every process's file descriptors, so what was found is
    kept for as long as the socket is listed.
    """

    def __init__(self) -> None:
        self._found: dict[Entry, tuple[Path, ...]] = {}
        self._lock = threading.Lock()

    def locate(self, entries: Iterable[Entry], table: frozenset[Entry]) -> list[Path]:
        """The absolute paths of `entries`, the relative ones resolved; `table` is the
        whole current listing (what is no longer in it is forgotten)."""
        paths = [Path(name) for name, _ in entries if name.startswith("/")]
        relative = {entry for entry in entries if not entry[0].startswith("/")}
        if not relative:
            return paths
        with self._lock:
            self._found = {entry: found for entry, found in self._found.items() if entry in table}
            unknown = relative - self._found.keys()
            if unknown:
                holders = socket_holders({inode for _, inode in unknown})
                for name, inode in unknown:
                    self._found[name, inode] = _joined(name, holders.get(inode, set()))
            return paths + [path for entry in relative for path in self._found[entry]]


def _joined(name: str, pids: set[int]) -> tuple[Path, ...]:
    found = []
    for pid in pids:
        try:
            found.append(Path(os.readlink(f"/proc/{pid}/cwd")) / name)
        except OSError:
            continue
    return tuple(dict.fromkeys(found))


RELATIVE_NAMES = RelativeNames()


@dataclass
class SocketCover:
    """The host sockets one sandbox covers, and what it has seen of /proc/net/unix since.

    `shared_network` is True when the sandbox shares opus's network namespace
    (`sandbox.network = true`): its own sockets are then listed in opus's
    /proc/net/unix too, and must not count as new host sockets.
    """

    worktree: Path
    paths: list[Path]
    """The socket paths to cover with /dev/null."""
    shared_network: bool = False
    _seen: frozenset[Entry] = field(default_factory=frozenset, repr=False)

    @classmethod
    def now(cls, worktree: Path, *, shared_network: bool = False) -> SocketCover:
        """The cover a sandbox starting now in `worktree` needs."""
        table = read_unix_table()
        paths = reachable_sockets(RELATIVE_NAMES.locate(table, table), worktree)
        return cls(worktree, paths, shared_network, table)

    def vanished(self, output: str) -> bool:
        """True when `output` is bwrap stopping before the command ran because one of
        these sockets (or its directory) was removed between the scan and its mounts
        ("Can't create file at …", "Can't mkdir parents for …"): starting again, with a
        fresh cover, is safe."""
        first = output.split("\n", 1)[0]
        return first.startswith("bwrap: ") and any(str(path) in first for path in self.paths)

    def missing(self, sandbox_pid: int) -> list[Path]:
        """Host sockets reachable from the sandbox whose process is `sandbox_pid` that
        this cover misses: bound, or bound anew at a covered path, since it was made.

        Cheap when nothing changed: one read of /proc/net/unix and a set difference;
        only entries not seen at the previous call are looked at.
        """
        table = read_unix_table()
        fresh, self._seen = table - self._seen, table
        if self.shared_network and fresh:
            fresh = _not_held_by(fresh, process_tree(sandbox_pid))
        if not fresh:
            return []
        return sorted(reachable_sockets(RELATIVE_NAMES.locate(fresh, table), self.worktree))


def _not_held_by(entries: frozenset[Entry], pids: set[int]) -> frozenset[Entry]:
    """`entries` without the sockets that the processes `pids` hold open (a sandbox's
    own sockets, listed in /proc/net/unix when it shares opus's network namespace)."""
    own = socket_holders({inode for _, inode in entries}, pids)
    return frozenset(entry for entry in entries if entry[1] not in own)


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        ppid = int(text[text.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree
