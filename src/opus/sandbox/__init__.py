"""The one runner for every command an agent or the tester runs.

`sandbox_for(cfg)` picks the kind from `sandbox.kind`: `bwrap` (the host read-only,
secrets hidden, the worktree the only writable place, no network) or `none` (process
control only, with a loud warning). `check_sandbox(cfg)` is what `opus doctor` runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from opus.config import SandboxConfig
from opus.errors import SandboxError
from opus.sandbox.bwrap import BwrapSandbox, find_bwrap
from opus.sandbox.cgroups import find_cgroup_host
from opus.sandbox.environment import scrubbed_env
from opus.sandbox.limits import Limits, find_prlimit
from opus.sandbox.nproc import counting
from opus.sandbox.unsafe import UNSAFE_WARNING, UnsandboxedRunner, warn_unsafe_once
from opus.seams import Sandbox

__all__ = [
    "BwrapSandbox",
    "UnsandboxedRunner",
    "bwrap_available",
    "check_sandbox",
    "limits_in_force",
    "sandbox_for",
    "scrubbed_env",
]

CHECK_TIMEOUT_S = 20.0
INSTALL_HINT = (
    'install it (apt-get install bubblewrap) or set sandbox.kind = "none" in opus.toml '
    "(unsafe: no isolation)"
)


def bwrap_available() -> bool:
    """True when a `bwrap` executable is on PATH."""
    return find_bwrap() is not None


def sandbox_for(
    cfg: SandboxConfig,
    *,
    state_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Sandbox:
    """The sandbox `cfg.kind` names.

    `state_dir` (opus's database, logs, other jobs' worktrees) is hidden from commands;
    `environ` defaults to this process's environment, scrubbed of secrets.
    Raises `SandboxError` when bwrap is configured but not installed.
    """
    if cfg.kind == "none":
        warn_unsafe_once()
        return UnsandboxedRunner(
            output_cap_bytes=cfg.output_cap_bytes,
            environ=environ,
            pass_env=cfg.pass_env,
            limits=Limits.from_config(cfg),
            cgroup_host=find_cgroup_host(),
        )
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxError(f'sandbox.kind is "bwrap" but bwrap is not on PATH; {INSTALL_HINT}')
    return BwrapSandbox(
        bwrap=bwrap,
        network=cfg.network,
        output_cap_bytes=cfg.output_cap_bytes,
        state_dir=state_dir,
        environ=environ,
        pass_env=cfg.pass_env,
        limits=Limits.from_config(cfg),
        cgroup_host=find_cgroup_host(),
    )


def limits_in_force(cfg: SandboxConfig) -> tuple[bool, str]:
    """Which resource limits hold for sandboxed commands: (complete?, one line).

    The line names the mechanisms and how the process limit counts. Incomplete when
    prlimit is missing, or when opus runs as root without a cgroup (the kernel does not
    enforce the process limit for root).
    """
    limits = Limits.from_config(cfg)
    host = find_cgroup_host()
    prlimit = find_prlimit()
    kinds = [*(["rlimits"] if prlimit else []), *([host.describe()] if host else [])]
    kinds.append("a worktree size check")
    line = f"{cfg.kind}: {limits.describe()} per command via {' + '.join(kinds)}"
    root = os.geteuid() == 0
    if cfg.kind == "none":
        how = counting(has_cgroup=host is not None)
        line += f"; processes: {how.describe(limits.max_processes)}"
    elif not root or host is not None:
        line += "; processes: counted in each sandbox's own user namespace" + (
            " and by its cgroup" if host is not None else ""
        )
    if prlimit is None:
        return False, f"{line}; prlimit is missing: apt-get install util-linux"
    if host is None and root:
        return False, (
            f"{line}; running as root without a writable cgroup, so "
            "sandbox.max_processes is NOT enforced: run opus as a normal user, or give it "
            "a delegated cgroup (systemd Delegate=yes)"
        )
    return True, line


def check_sandbox(cfg: SandboxConfig) -> str:
    """One line saying the configured sandbox works, by really running `true` in it.

    Raises `SandboxError` when bwrap is missing or the kernel refuses it (for example
    when unprivileged user namespaces are disabled).
    """
    if cfg.kind == "none":
        return f"WARNING: {UNSAFE_WARNING}"
    sandbox = sandbox_for(cfg)
    with tempfile.TemporaryDirectory(prefix="opus-doctor-") as tmp:
        result = sandbox.run("true", worktree=Path(tmp), timeout_s=CHECK_TIMEOUT_S)
    if result.exit_code != 0:
        raise SandboxError(
            f"bwrap cannot start a sandbox here (exit {result.exit_code}): "
            f"{result.output.strip()[:500]}; allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, or the AppArmor bwrap profile) "
            f'or set sandbox.kind = "none" (unsafe)'
        )
    network = "on" if cfg.network else "off"
    return f"bwrap {_bwrap_version()} works: host read-only, worktree writable, network {network}"


def _bwrap_version() -> str:
    bwrap = find_bwrap() or "bwrap"
    try:
        out = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "(unknown version)"
    return out.strip().removeprefix("bubblewrap").strip() or "(unknown version)"
