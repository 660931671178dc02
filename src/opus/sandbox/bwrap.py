"""The bubblewrap sandbox: the host read-only, secrets hidden, the worktree writable.

The mount plan (see designs/sandbox.md) is a pure function of the worktree, the home
directory and the state dir, so it can be read and tested without running anything.
Mounts are applied in order and a later mount covers an earlier one; the plan sorts
the per-path mounts by depth so a parent is always mounted before its children
(state dir hidden, then the worktree inside it bound back, then its `.git` read-only).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opus.sandbox.environment import SANDBOX_TMPDIR
from opus.sandbox.process import ShellRunner, shell

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
) -> list[str]:
    """The bwrap filesystem options for a command in `worktree` (pure but for `exists`)."""
    base = [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", SANDBOX_TMPDIR,
        # Unix sockets in /run (docker, dbus, agents) ignore read-only mounts.
        "--tmpfs", "/run",
    ]  # fmt: skip
    mounts: list[Mount] = []
    resolv = _resolv_conf_target()
    if resolv is not None:
        mounts.append(Mount("--ro-bind", (str(resolv), str(resolv))))
    for path in hidden_paths(home, state_dir):
        if path.is_dir():
            mounts.append(Mount("--tmpfs", (str(path),)))
        else:
            mounts.append(Mount("--ro-bind", ("/dev/null", str(path))))
    wt = str(worktree)
    mounts.append(Mount("--bind" if writable else "--ro-bind", (wt, wt)))
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
) -> list[str]:
    """The whole bwrap command line that runs `command` in a shell in `worktree`."""
    isolation = [
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        *([] if network else ["--unshare-net"]),
        # Root outside would otherwise keep every capability and could remount `/` rw.
        "--cap-drop", "ALL",
        "--new-session", "--die-with-parent",
        "--chdir", str(worktree),
    ]  # fmt: skip
    plan = mount_plan(worktree, writable=writable, home=home, state_dir=state_dir)
    return [bwrap, *plan, *isolation, "--", shell(), "-c", command]


class BwrapSandbox(ShellRunner):
    """`Sandbox` on bubblewrap: the worktree is the only writable place."""

    def __init__(
        self,
        *,
        bwrap: str,
        network: bool,
        output_cap_bytes: int,
        state_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(output_cap_bytes=output_cap_bytes, environ=environ)
        self.bwrap = bwrap
        self.network = network
        self.state_dir = state_dir.resolve() if state_dir is not None else None
        home = self.env.get("HOME")
        self.home = Path(home) if home else None

    def __repr__(self) -> str:
        return f"BwrapSandbox(bwrap={self.bwrap!r}, network={self.network})"

    def argv(self, command: str, *, worktree: Path, writable: bool) -> list[str]:
        """The bwrap command line for `command` in `worktree` (read-only unless `writable`)."""
        return bwrap_argv(
            self.bwrap,
            command,
            worktree=worktree,
            writable=writable,
            network=self.network,
            home=self.home,
            state_dir=self.state_dir,
        )
