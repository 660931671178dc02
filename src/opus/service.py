"""The systemd unit: render it, install it, and say how to enable it.

Hardening choices that matter for opus (see designs/operations.md):

- `ProtectSystem=strict` makes the whole file system read-only; `ReadWritePaths=` opens
  the vault, the state dir and each target repo again. `ProtectHome=read-only` (not
  `yes`) because vaults and repos usually live under /home; the `ReadWritePaths=` listed
  there stay writable.
- The sandbox is bubblewrap, which needs unprivileged user namespaces and mounts a fresh
  /proc inside them. So no `RestrictNamespaces=`, no `PrivateUsers=` on system units, and
  no `ProtectKernelTunables=` / `ProtectKernelLogs=` / `ProtectProc=`: they overmount
  parts of /proc, after which the kernel refuses bwrap's new procfs ("Can't mount proc").
- Secrets (ANTHROPIC_API_KEY, GITHUB_TOKEN) come from an optional `EnvironmentFile=-`.

`opus service install --dashboard` also writes `opus-dashboard.service`: `opus dashboard`
as a plain `Type=exec` service (no watchdog: it has no loop to vouch for) with the same
hardening and paths, so its actions (retry, cancel) can write the registry and worktrees.
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from opus.errors import ConfigError

UNIT_NAME = "opus.service"
DASHBOARD_UNIT_NAME = "opus-dashboard.service"
PURPOSE = "feature requests in a notes vault become reviewed pull requests"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
USER_UNIT_DIR = Path(".config/systemd/user")
WATCHDOG_S = 120
TIMEOUT_STOP_S = 90
RESTART_S = 10

_HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RestrictRealtime=yes",
    "SystemCallArchitectures=native",
)


NETWORK_ONLINE = ("After=network-online.target", "Wants=network-online.target")
"""System units only: the per-user manager has no network-online.target (systemd.special(7)
lists it among the system manager's units); a user unit naming it waits for nothing. opus
needs no network to start: the forge and the model API are retried when they fail."""


def default_exec_start(python: str | None = None, command: str = "run") -> list[str]:
    """`opus run` (or `opus <command>`) as the service runs it: the `opus` script beside
    the interpreter, if installed there, else `<interpreter> -m opus run`; both absolute."""
    interpreter = Path(python or sys.executable).absolute()
    script = interpreter.parent / "opus"
    if script.is_file():
        return [str(script), command]
    return [str(interpreter), "-m", "opus", command]


def _quote(arg: str) -> str:
    """One ExecStart/ReadWritePaths word, escaped for systemd's unit-file syntax."""
    if "\n" in arg:
        raise ConfigError(f"a unit file cannot hold a newline; rename {arg!r}")
    arg = arg.replace("%", "%%")
    if re.search(r"""[\s"'\\]""", arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _exec_word(arg: str) -> str:
    # In ExecStart, "$" starts a variable expansion; "$$" is a literal dollar.
    return _quote(arg).replace("$", "$$")


def _absolute(path: Path, what: str) -> Path:
    if not path.is_absolute():
        raise ConfigError(f"{what} must be an absolute path for the unit file; got {path}")
    return path


def render_unit(
    *,
    exec_start: list[str],
    working_dir: Path,
    read_write_paths: list[Path],
    user_mode: bool,
    environment_file: Path | None,
    run_as: str | None = None,
    watchdog_s: int = WATCHDOG_S,
    timeout_stop_s: int = TIMEOUT_STOP_S,
    dashboard: bool = False,
) -> str:
    """The text of `opus.service` (or, with `dashboard`, of `opus-dashboard.service`).

    `user_mode` renders a `systemctl --user` unit (wanted by default.target, no User=);
    `run_as` sets `User=` on a system unit.
    """
    if not exec_start or not Path(exec_start[0]).is_absolute():
        raise ConfigError(f"ExecStart needs an absolute program path; got {exec_start!r}")
    rw_paths = sorted({_absolute(path, "ReadWritePaths") for path in read_write_paths})
    kind = ["Type=exec"] if dashboard else ["Type=notify", "NotifyAccess=main"]
    service = [
        *kind,
        *([f"User={run_as}"] if run_as and not user_mode else []),
        f"WorkingDirectory={_quote(str(_absolute(working_dir, 'WorkingDirectory')))}",
        "ExecStart=" + " ".join(_exec_word(arg) for arg in exec_start),
        *([] if dashboard else ["ExecReload=/bin/kill -HUP $MAINPID"]),
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if environment_file is not None:
        env_file = _absolute(environment_file, "EnvironmentFile")
        service.append(f"EnvironmentFile=-{_quote(str(env_file))}")
    if not dashboard:
        service.append(f"WatchdogSec={watchdog_s}")
    service += [
        "Restart=on-failure",
        f"RestartSec={RESTART_S}",
        f"TimeoutStopSec={timeout_stop_s}",
        # SIGTERM to the daemon only; its agent process groups get SIGKILL at the timeout.
        *([] if dashboard else ["KillMode=mixed"]),
        *_HARDENING,
        "ReadWritePaths=" + " ".join(_quote(str(path)) for path in rw_paths),
    ]
    what = "the web board" if dashboard else PURPOSE
    return "\n".join(
        [
            "[Unit]",
            f"Description=opus: {what}",
            *([] if user_mode else NETWORK_ONLINE),
            "",
            "[Service]",
            *service,
            "",
            "[Install]",
            f"WantedBy={'default.target' if user_mode else 'multi-user.target'}",
            "",
        ]
    )


def service_user(environ: Mapping[str, str]) -> str | None:
    """Whom a system unit runs opus as (`User=`): the user behind `sudo opus service
    install`, else whoever runs it; None (root) only when root itself installs it. Run as
    root, opus would leave root-owned files in the user's vault and repos."""
    name = environ.get("SUDO_USER") or environ.get("USER") or getpass.getuser()
    return None if name == "root" else name


def unit_name(name: str | None, *, dashboard: bool = False) -> str:
    """The unit file's name: `opus.service` (`opus-dashboard.service`), or `name`'s."""
    if name is None:
        return DASHBOARD_UNIT_NAME if dashboard else UNIT_NAME
    stem = name.removesuffix(".service")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stem) or stem.endswith("-dashboard"):
        raise ConfigError(
            f"--name {name!r} is not a unit name opus can use: letters, digits, '_', '.' and "
            "'-', not ending in -dashboard (e.g. --name opus-work)"
        )
    return f"{stem}-dashboard.service" if dashboard else f"{stem}.service"


def _refuse_other_project(path: Path, working_dir: Path) -> None:
    """Raise when `path` holds a unit for another project or one opus did not write."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError:
        return  # unreadable: the write below says what is wrong
    ours = _quote(str(working_dir))
    found = re.search(r"^WorkingDirectory=(.*)$", text, re.MULTILINE)
    if found is not None and found.group(1).strip() == ours and "opus" in text:
        return  # the same project's unit: brought up to date
    runs = (f"runs the project in {found.group(1).strip()}" if found is not None
            else "was not written by opus for a project")
    raise ConfigError(
        f"{path} already exists and {runs}; not replaced. One unit runs one project: "
        "install this one beside it with `--name opus-<something>`, or replace it with "
        "`--force`"
    )


def unit_path(user: bool, *, home: Path, name: str = UNIT_NAME) -> Path:
    """Where the unit goes: `~/.config/systemd/user/` or `/etc/systemd/system/`."""
    return (home / USER_UNIT_DIR if user else SYSTEM_UNIT_DIR) / name


def instructions(
    user: bool, path: Path, missing: list[Path] | None = None, env_file: Path | None = None
) -> str:
    """How to enable, start and watch the installed unit."""
    ctl = "systemctl --user" if user else "sudo systemctl"
    journal = "journalctl --user" if user else "journalctl"
    name = path.name.removesuffix(".service")
    if name != "opus":
        return "\n".join([f"Wrote {path}. To start it now and at boot:",
                          f"  {ctl} daemon-reload && {ctl} enable --now {name}",
                          f"Follow its log:  {journal} -u {name} -f"])
    lines = [
        f"Wrote {path}. To start opus now and at boot:",
        f"  {ctl} daemon-reload && {ctl} enable --now opus",
    ]
    if user:
        lines.append("  loginctl enable-linger $USER   # keep it running while logged out")
    lines += [
        f"Follow its log:  {journal} -u opus -f",
        f"Status:          {ctl} status opus   (and `opus status`)",
        "Secrets (ANTHROPIC_API_KEY=..., GITHUB_TOKEN=...) go in "
        f"{env_file or 'the EnvironmentFile named in the unit'}, mode 600.",
        "Only the unit's ReadWritePaths= are writable: add any other repo an FR names with "
        "`repo:` (and its push remote when that is a directory on this host).",
    ]
    if missing:
        # systemd cannot set up ReadWritePaths= that do not exist (status 226/NAMESPACE).
        lines.append("Create these first, the unit will not start without them:")
        lines += [f"  mkdir -p {_quote(str(path))}" for path in missing]
    return "\n".join(lines)


def install_unit(
    user: bool,
    *,
    home: Path,
    working_dir: Path,
    read_write_paths: list[Path],
    environment_file: Path | None = None,
    exec_start: list[str] | None = None,
    run_as: str | None = None,
    unit_dir: Path | None = None,
    dashboard: bool = False,
    name: str | None = None,
    force: bool = False,
) -> tuple[Path, str]:
    """Write the unit and return (its path, how to enable it).

    A unit of that name that runs another project (or that opus did not write) is not
    replaced unless `force`: one unit runs one project, and `name` installs another one
    beside it (`<name>.service`, `<name>-dashboard.service`).

    Read-write paths that do not exist yet are named in the instructions: systemd
    refuses to start a unit whose `ReadWritePaths=` are missing, but creating a mistyped
    repo path here would hide the mistake. `unit_dir` overrides the standard location.
    `dashboard` writes `opus-dashboard.service` (`opus dashboard`) instead.
    """
    command = "dashboard" if dashboard else "run"
    text = render_unit(
        exec_start=exec_start or default_exec_start(command=command),
        working_dir=working_dir,
        read_write_paths=read_write_paths,
        user_mode=user,
        environment_file=environment_file,
        run_as=run_as,
        dashboard=dashboard,
    )
    name = unit_name(name, dashboard=dashboard)
    path = unit_dir / name if unit_dir is not None else unit_path(user, home=home, name=name)
    if not force:
        _refuse_other_project(path, working_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except PermissionError as exc:
        hint = "run it with sudo" if not user else "check the permissions"
        raise ConfigError(f"cannot write {exc.filename}: permission denied; {hint}") from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot write the unit {path}: {exc.strerror}; pick a unit directory that exists"
        ) from exc
    missing = [directory for directory in read_write_paths if not directory.exists()]
    return path, instructions(user, path, missing, environment_file)
