"""The systemd unit: its keys, `systemd-analyze verify`, and `install_unit`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opus.errors import ConfigError
from opus.service import default_exec_start, install_unit, render_unit, service_user

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "systemd" / "opus.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _render(tmp_path: Path, *, user_mode: bool, **extra: object) -> str:
    return render_unit(
        exec_start=[sys.executable, "-m", "opus", "run"],
        working_dir=tmp_path,
        read_write_paths=[tmp_path / "vault", tmp_path / ".opus", tmp_path / "repo"],
        user_mode=user_mode,
        environment_file=tmp_path / "opus.env",
        **extra,  # type: ignore[arg-type]
    )


def test_rendered_unit_has_the_keys(tmp_path: Path) -> None:
    text = _render(tmp_path, user_mode=False, run_as="opus")
    lines = set(text.splitlines())
    for key in (
        "Type=notify", "NotifyAccess=main", "WatchdogSec=120", "Restart=on-failure",
        "TimeoutStopSec=90", "KillMode=mixed", "NoNewPrivileges=yes", "ProtectSystem=strict",
        "ProtectHome=read-only", "PrivateTmp=yes", "ProtectKernelModules=yes",
        "ProtectControlGroups=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes",
        "RestrictRealtime=yes", "SystemCallArchitectures=native", "User=opus",
        "WantedBy=multi-user.target", f"EnvironmentFile=-{tmp_path / 'opus.env'}",
        f"WorkingDirectory={tmp_path}",
        f"ExecStart={sys.executable} -m opus run",
        f"ReadWritePaths={tmp_path / '.opus'} {tmp_path / 'repo'} {tmp_path / 'vault'}",
    ):
        assert key in lines, key
    # bwrap needs user namespaces and a fresh /proc (see opus.service's docstring).
    assert "RestrictNamespaces" not in text and "ProtectKernelTunables" not in text


def test_user_unit_has_no_user_and_wants_default_target(tmp_path: Path) -> None:
    text = _render(tmp_path, user_mode=True, run_as="opus")
    assert "WantedBy=default.target" in text
    assert "User=" not in text
    assert "network-online.target" not in text  # the user manager has no such unit
    assert "Wants=network-online.target" in _render(tmp_path, user_mode=False)


def test_awkward_paths_are_quoted(tmp_path: Path) -> None:
    text = render_unit(
        exec_start=["/opt/my tools/opus", "run", "--config", "/etc/100%/$HOME.toml"],
        working_dir=Path("/srv/my vault"),
        read_write_paths=[Path("/srv/my vault")],
        user_mode=False,
        environment_file=None,
    )
    assert 'ExecStart="/opt/my tools/opus" run --config /etc/100%%/$$HOME.toml' in text
    assert 'ReadWritePaths="/srv/my vault"' in text
    assert "EnvironmentFile" not in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exec_start": ["opus", "run"]},
        {"working_dir": Path("relative")},
        {"read_write_paths": [Path("vault")]},
    ],
)
def test_relative_paths_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "exec_start": ["/usr/bin/opus", "run"],
        "working_dir": tmp_path,
        "read_write_paths": [tmp_path],
        "user_mode": False,
        "environment_file": None,
    }
    with pytest.raises(ConfigError, match="absolute"):
        render_unit(**{**args, **kwargs})  # type: ignore[arg-type]


@needs_analyze
def test_rendered_system_unit_passes_verify(tmp_path: Path) -> None:
    unit = tmp_path / "opus.service"
    unit.write_text(_render(tmp_path, user_mode=False))
    result = _verify("verify", str(unit))
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@needs_analyze
def test_rendered_user_unit_passes_verify(tmp_path: Path) -> None:
    unit = tmp_path / "opus.service"
    unit.write_text(_render(tmp_path, user_mode=True))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    # The user manager needs a runtime dir; a container has no login session to give one.
    result = _verify("--user", "verify", str(unit), env={"XDG_RUNTIME_DIR": str(runtime)})
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@needs_analyze
@pytest.mark.parametrize("user_mode", [False, True], ids=["system", "user"])
def test_every_unit_named_exists_for_its_manager(tmp_path: Path, user_mode: bool) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    scope = ["--user"] if user_mode else []
    paths = _verify(*scope, "unit-paths", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert paths.returncode == 0, paths.stderr
    known = {unit.name for folder in paths.stdout.split() if Path(folder).is_dir()
             for unit in Path(folder).iterdir()}  # fmt: skip
    text = _render(tmp_path, user_mode=user_mode)
    named = {word for line in text.splitlines()
             if line.split("=")[0] in ("After", "Wants", "Requires", "WantedBy")
             for word in line.split("=", 1)[1].split()}  # fmt: skip
    assert named and named <= known, named - known


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    unit = tmp_path / "opus.service"
    unit.write_text(_render(tmp_path, user_mode=False).replace(sys.executable, "/nonexistent/py"))
    result = _verify("verify", str(unit))
    assert result.returncode != 0 and "/nonexistent/py" in result.stderr


@needs_analyze
def test_shipped_unit_passes_verify(tmp_path: Path) -> None:
    # The shipped unit runs /usr/local/bin/opus, which this machine need not have: verify
    # it inside a tmp root that holds its programs and a copy of systemd's own units.
    if not (SYSTEM_UNITS / "sysinit.target").exists():
        pytest.skip("systemd's unit files are not installed")
    root = tmp_path / "root"
    program = root / "usr/local/bin/opus"
    for stub in (program, root / "bin/kill"):
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    target = root / "etc/systemd/system/opus.service"
    target.parent.mkdir(parents=True)
    shutil.copy(SHIPPED, target)

    result = _verify("verify", f"--root={root}", "/etc/systemd/system/opus.service")

    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
    program.unlink()  # and the same check fails when the program is missing
    assert _verify("verify", f"--root={root}", "/etc/systemd/system/opus.service").returncode


def test_shipped_unit_is_what_render_unit_makes() -> None:
    expected = render_unit(
        exec_start=["/usr/local/bin/opus", "run"],
        working_dir=Path("/var/lib/opus"),
        read_write_paths=[Path("/var/lib/opus")],
        user_mode=False,
        environment_file=Path("/etc/opus/opus.env"),
        run_as="opus",
    )
    body = "".join(
        line for line in SHIPPED.read_text().splitlines(keepends=True) if not line.startswith("#")
    )
    assert body == expected


def test_install_user_unit_into_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = home / "opus"
    (work / "vault").mkdir(parents=True)

    path, how = install_unit(
        True,
        home=home,
        working_dir=work,
        read_write_paths=[work / "vault", work / ".opus"],
        environment_file=home / ".config/opus/env",
        exec_start=["/usr/bin/opus", "run"],
    )

    assert path == home / ".config/systemd/user/opus.service"
    text = path.read_text()
    assert "ExecStart=/usr/bin/opus run" in text and "WantedBy=default.target" in text
    assert "systemctl --user daemon-reload && systemctl --user enable --now opus" in how
    assert "loginctl enable-linger" in how
    assert "journalctl --user -u opus -f" in how
    assert f"mkdir -p {work / '.opus'}" in how  # missing state dir named, not invented
    assert f"mkdir -p {work / 'vault'}" not in how
    assert not (work / ".opus").exists()


def test_install_system_unit_instructions(tmp_path: Path) -> None:
    path, how = install_unit(
        False,
        home=tmp_path,
        working_dir=tmp_path,
        read_write_paths=[tmp_path],
        exec_start=["/usr/bin/opus", "run"],
        unit_dir=tmp_path / "units",
    )
    assert path == tmp_path / "units/opus.service"
    assert "sudo systemctl daemon-reload && sudo systemctl enable --now opus" in how
    assert "journalctl -u opus -f" in how and "linger" not in how


def test_install_into_an_unusable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the unit"):
        install_unit(False, home=tmp_path, working_dir=tmp_path, read_write_paths=[],
                     exec_start=["/usr/bin/opus"], unit_dir=blocker / "units")


def test_default_exec_start_prefers_the_script_beside_the_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "bin/python"
    python.parent.mkdir()
    python.write_text("")
    assert default_exec_start(str(python)) == [str(python), "-m", "opus", "run"]
    (tmp_path / "bin/opus").write_text("")
    assert default_exec_start(str(python)) == [str(tmp_path / "bin/opus"), "run"]


def _render_dashboard(tmp_path: Path, *, user_mode: bool) -> str:
    return render_unit(
        exec_start=[sys.executable, "-m", "opus", "dashboard"],
        working_dir=tmp_path,
        read_write_paths=[tmp_path / ".opus", tmp_path / "repo"],
        user_mode=user_mode,
        environment_file=tmp_path / "opus.env",
        dashboard=True,
    )


def test_dashboard_unit_runs_opus_dashboard_without_a_watchdog(tmp_path: Path) -> None:
    lines = set(_render_dashboard(tmp_path, user_mode=False).splitlines())
    assert {"Type=exec", f"ExecStart={sys.executable} -m opus dashboard",
            "Description=opus: the web board", "NoNewPrivileges=yes", "ProtectSystem=strict",
            f"ReadWritePaths={tmp_path / '.opus'} {tmp_path / 'repo'}",
            f"EnvironmentFile=-{tmp_path / 'opus.env'}"} <= lines
    assert not {line for line in lines if line.startswith(("WatchdogSec", "NotifyAccess",
                                                           "ExecReload", "KillMode"))}


@needs_analyze
@pytest.mark.parametrize("user_mode", [False, True], ids=["system", "user"])
def test_dashboard_unit_passes_verify(tmp_path: Path, user_mode: bool) -> None:
    unit = tmp_path / "opus-dashboard.service"
    unit.write_text(_render_dashboard(tmp_path, user_mode=user_mode))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    scope = ["--user"] if user_mode else []
    result = _verify(*scope, "verify", str(unit), env={"XDG_RUNTIME_DIR": str(runtime)})
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_service_install_dashboard_writes_both_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opus.cli import main

    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "opus.toml").write_text('[vault]\npath = "vault"\n')
    monkeypatch.setenv("HOME", str(home))
    assert main(["--config", str(tmp_path / "opus.toml"), "service", "install", "--user",
                 "--dashboard"]) == 0
    units = home / ".config/systemd/user"
    assert sorted(path.name for path in units.iterdir()) == ["opus-dashboard.service",
                                                             "opus.service"]
    text = (units / "opus-dashboard.service").read_text()
    assert "Type=exec" in text and text.split("ExecStart=")[1].split("\n")[0].endswith(
        "dashboard")
    out = capsys.readouterr().out
    assert "systemctl --user enable --now opus-dashboard" in out
    assert "systemctl --user enable --now opus\n" in out


@pytest.mark.parametrize(("environ", "user"), [
    ({"SUDO_USER": "ada", "USER": "root"}, "ada"),  # `sudo opus service install`
    ({"USER": "ada"}, "ada"),
    ({"USER": "root"}, None),  # root installing for itself: no User= line
])
def test_a_system_unit_runs_opus_as_the_user_who_installed_it(
    tmp_path: Path, environ: dict[str, str], user: str | None
) -> None:
    assert service_user(environ) == user
    path, _ = install_unit(False, home=tmp_path, working_dir=tmp_path, read_write_paths=[],
                           run_as=service_user(environ), unit_dir=tmp_path)
    users = [line for line in path.read_text().splitlines() if line.startswith("User=")]
    assert users == ([f"User={user}"] if user else [])


def test_a_unit_for_another_project_is_kept_unless_forced_and_name_installs_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opus.cli import main

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work, play = tmp_path / "work", tmp_path / "play"
    for project in (work, play):
        project.mkdir()
        (project / "opus.toml").write_text('[vault]\npath = "vault"\n')
    units = home / ".config/systemd/user"

    def install(project: Path, *extra: str) -> int:
        return main(["--config", str(project / "opus.toml"), "service", "install", "--user",
                     *extra])

    assert install(work) == 0
    first = (units / "opus.service").read_text()
    assert install(work) == 0  # the same project again: brought up to date
    capsys.readouterr()

    assert install(play) == 2
    err = capsys.readouterr().err
    assert f"runs the project in {work}" in err and "--name" in err and "--force" in err
    assert (units / "opus.service").read_text() == first

    assert install(play, "--name", "opus-play", "--dashboard") == 0
    assert sorted(path.name for path in units.iterdir()) == [
        "opus-play-dashboard.service", "opus-play.service", "opus.service"]
    assert f"WorkingDirectory={play}" in (units / "opus-play.service").read_text()
    assert "systemctl --user enable --now opus-play\n" in capsys.readouterr().out
    assert (units / "opus.service").read_text() == first

    assert install(play, "--force") == 0
    assert f"WorkingDirectory={play}" in (units / "opus.service").read_text()

    (units / "hand-made.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert install(work, "--name", "hand-made") == 2
    assert "was not written by opus" in capsys.readouterr().err
    assert install(work, "--name", "bad name") == 2
    assert "--name 'bad name'" in capsys.readouterr().err
