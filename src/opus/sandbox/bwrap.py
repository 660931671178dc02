"""The bubblewrap sandbox: the host read-only, secrets hidden, the worktree writable.

The mount plan (see designs/sandbox.md) is a pure function of the worktree, the home
directory and the state dir, so it can be read and tested without running anything.
Mounts are applied in order and a later mount covers an earlier one; the plan sorts
the per-path mounts by depth so a parent is always mounted before its children
(state dir hidden, then the worktree inside it bound back, then its `.git` read-only).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from opus.sandbox.cgroups import CgroupHost
from opus.sandbox.environment import SANDBOX_TMPDIR
from opus.sandbox.limits import Limits, rlimit_argv
from opus.sandbox.owner import guarded_shell_argv, owner_fd
from opus.sandbox.process import CommandLine, ShellRunner, shell
from opus.sandbox.sockets import SocketCover
from opus.seams import Grant

# Relative to $HOME: credentials of ssh, cloud CLIs, forges, package registries and
# agent tools. Directories get an empty tmpfs over them, files get /dev/null.
HIDDEN_IN_HOME: tuple[str, ...] = (
    ".ssh",
    ".aws",
    ".gnupg",
    ".config/gh",
    ".config/hub",
    ".config/opus",
    ".config/gcloud",
    ".config/git/credentials",
    ".azure",
    ".kube",
    ".docker",
    ".password-store",
    ".local/share/keyrings",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".vault-token",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".claude",
    ".claude.json",
)


SMALL_TMPFS_BYTES = 1024 * 1024
"""Size of the tmpfs over hidden places and /run: nothing needs to write there."""


@dataclass(frozen=True)
class Mount:
    """One bwrap mount option: `op` then its arguments (the last one is the destination)."""

    op: str
    args: tuple[str, ...]

    @property
    def depth(self) -> int:
        return len(Path(self.args[-1]).parts)

    def argv(self) -> list[str]:
        return [self.op, *self.args]


def find_bwrap() -> str | None:
    """The path of the bwrap executable, or None."""
    return shutil.which("bwrap")


def hidden_paths(home: Path | None, state_dir: Path | None) -> list[Path]:
    """Existing secret places to cover: credentials under `home`, and opus's state dir."""
    candidates = [home / rel for rel in HIDDEN_IN_HOME] if home is not None else []
    if state_dir is not None:
        candidates.append(state_dir)
    # Resolve symlinks so the mount covers what a link would lead to.
    return [path.resolve() for path in candidates if path.exists()]


def git_dirs(worktree: Path) -> list[Path]:
    """The git directories a worktree needs to read: its `.git` and, if linked, the common dir.

    A linked worktree's `.git` is a file `gitdir: <repo>/.git/worktrees/<name>`; that
    directory's `commondir` file leads to `<repo>/.git`, which holds objects and refs.
    """
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return [dot_git]
    if not dot_git.is_file():
        return []
    text = dot_git.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return [dot_git]
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    commondir_file = gitdir / "commondir"
    common = gitdir
    if commondir_file.is_file():
        common = (gitdir / commondir_file.read_text().strip()).resolve()
    return [dot_git, common] if common.is_dir() else [dot_git]


def _resolv_conf_target() -> Path | None:
    """Where /etc/resolv.conf really lives when that is under /run (systemd-resolved)."""
    target = Path("/etc/resolv.conf").resolve()
    return target if target.is_file() and target.is_relative_to("/run") else None


def mount_plan(
    worktree: Path,
    *,
    writable: bool,
    home: Path | None,
    state_dir: Path | None,
    sockets: Sequence[Path] = (),
    tmp_mb: int | None = None,
    writable_inside: Sequence[Path] = (),
) -> list[str]:
    """The bwrap filesystem options for a command in `worktree` (pure but for `exists`).

    `sockets` are host unix sockets to cover with /dev/null; `tmp_mb` caps the private
    /tmp, which lives in memory; `writable_inside` are existing directories inside a
    read-only worktree bound back writable (one outside the worktree is ignored).
    """
    tmp_size = [] if tmp_mb is None else ["--size", str(tmp_mb * 1024 * 1024)]
    base = [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        *tmp_size, "--tmpfs", SANDBOX_TMPDIR,
        # Unix sockets in /run (docker, dbus, agents) ignore read-only mounts.
        "--size", str(SMALL_TMPFS_BYTES), "--tmpfs", "/run",
    ]  # fmt: skip
    mounts: list[Mount] = []
    mounts.extend(Mount("--ro-bind", ("/dev/null", str(sock))) for sock in sockets)
    resolv = _resolv_conf_target()
    if resolv is not None:
        mounts.append(Mount("--ro-bind", (str(resolv), str(resolv))))
    for path in hidden_paths(home, state_dir):
        if path.is_dir():
            mounts.append(Mount("--size", (str(SMALL_TMPFS_BYTES), "--tmpfs", str(path))))
        else:
            mounts.append(Mount("--ro-bind", ("/dev/null", str(path))))
    wt = str(worktree)
    mounts.append(Mount("--bind" if writable else "--ro-bind", (wt, wt)))
    if not writable:
        inside = [path for path in writable_inside if path.is_relative_to(worktree)]
        mounts.extend(Mount("--bind", (str(path), str(path))) for path in inside)
    # The repo's git dir stays read-only so nothing can plant hooks or config.
    mounts.extend(Mount("--ro-bind", (str(d), str(d))) for d in git_dirs(worktree))
    ordered = sorted(mounts, key=lambda mount: mount.depth)  # stable: ties keep order
    return base + [arg for mount in ordered for arg in mount.argv()]


def bwrap_argv(
    bwrap: str,
    command: str,
    *,
    worktree: Path,
    writable: bool,
    network: bool,
    home: Path | None,
    state_dir: Path | None,
    limits: Limits | None = None,
    prlimit: str | None = None,
    sockets: Sequence[Path] = (),
    owner_fd: int | None = None,
    writable_inside: Sequence[Path] = (),
) -> list[str]:
    """The whole bwrap command line that runs `command` in a shell in `worktree`.

    With `limits` and a `prlimit`, the shell starts under the rlimits; they are set
    inside the sandbox, after bwrap made its user namespace, so the process count is
    this sandbox's alone and not the opus user's across the host. With `owner_fd` (the
    read end of `sandbox.owner`'s pipe, passed to the child) the command does not start
    when its owner died while bwrap was setting up.
    """
    isolation = [
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        *([] if network else ["--unshare-net"]),
        # Root outside would otherwise keep every capability and could remount `/` rw.
        "--cap-drop", "ALL",
        "--new-session", "--die-with-parent",
        "--chdir", str(worktree),
    ]  # fmt: skip
    tmp_mb = limits.max_memory_mb if limits is not None else None
    plan = mount_plan(
        worktree, writable=writable, home=home, state_dir=state_dir, sockets=sockets,
        tmp_mb=tmp_mb, writable_inside=writable_inside,
    )  # fmt: skip
    rlimits = rlimit_argv(prlimit, limits) if limits is not None and prlimit else []
    inner = [shell(), "-c", command] if owner_fd is None else guarded_shell_argv(command, owner_fd)
    return [bwrap, *plan, *isolation, "--", *rlimits, *inner]


class BwrapSandbox(ShellRunner):
    """`Sandbox` on bubblewrap: the worktree is the only writable place, resources capped."""

    def __init__(
        self,
        *,
        bwrap: str,
        network: bool,
        output_cap_bytes: int,
        state_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
        limits: Limits | None = None,
        cgroup_host: CgroupHost | None = None,
    ) -> None:
        super().__init__(
            output_cap_bytes=output_cap_bytes,
            environ=environ,
            pass_env=pass_env,
            limits=limits,
            cgroup_host=cgroup_host,
        )
        self.bwrap = bwrap
        self.network = network
        self.state_dir = state_dir.resolve() if state_dir is not None else None
        home = self.env.get("HOME")
        self.home = Path(home) if home else None
        self.writable_inside: tuple[Path, ...] = ()

    def __repr__(self) -> str:
        return f"BwrapSandbox(bwrap={self.bwrap!r}, network={self.network})"

    def granting(self, grant: Grant) -> Self:
        """A copy whose commands also get `grant.env`, the host's network when
        `grant.network` (the shared network namespace: see designs/sandbox.md), and
        `grant.writable_inside` writable in a read-only worktree."""
        widened = super().granting(grant)
        widened.network = self.network or grant.network
        widened.writable_inside = self.writable_inside + tuple(grant.writable_inside)
        return widened

    def argv(
        self,
        command: str,
        *,
        worktree: Path,
        writable: bool,
        owner_fd: int | None = None,
        has_cgroup: bool = False,
        cover: SocketCover | None = None,
    ) -> list[str]:
        """The bwrap command line for `command` in `worktree` (read-only unless `writable`).

        The process rlimit counts in bwrap's own user namespace, cgroup or not. `cover`
        names the host sockets to cover; by default, those live right now.
        """
        if cover is None:
            cover = SocketCover.now(worktree, shared_network=self.network)
        return bwrap_argv(
            self.bwrap,
            command,
            worktree=worktree,
            writable=writable,
            network=self.network,
            home=self.home,
            state_dir=self.state_dir,
            limits=self.limits,
            prlimit=self.prlimit,
            sockets=cover.paths,
            owner_fd=owner_fd,
            writable_inside=self.writable_inside,
        )

    def command_argv(
        self, command: str, *, worktree: Path, writable: bool, has_cgroup: bool = False
    ) -> CommandLine:
        """`argv` with the owner pipe (the command does not start if opus died meanwhile)
        and the socket cover it was made with, made fresh for this command."""
        fd = owner_fd()
        cover = SocketCover.now(worktree, shared_network=self.network)
        argv = self.argv(command, worktree=worktree, writable=writable, owner_fd=fd, cover=cover)
        return CommandLine(argv, (fd,), cover)
