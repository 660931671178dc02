"""Host unix sockets bound after a sandbox started: real bwrap, real socket servers.

A socket ignores read-only mounts, so a sandbox covers the host's live sockets with
/dev/null when it starts; these tests bind sockets afterwards and check that the next
command of the persistent shell (or the next one-shot command) cannot reach them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.engines.bash_session import BashSession, SessionResult, unquoted_path
from opus.sandbox import sandbox_for
from opus.sandbox.bwrap import bwrap_argv
from opus.sandbox.sockets import SocketCover, read_unix_table, unix_table
from tests.sandbox.conftest import UNIX_CONNECT, bwrap_sandbox, needs_bwrap, unix_service

PROC_NET_UNIX = """\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 4025 /var/run/postgresql/.s.PGSQL.5432
0000000000000000: 00000003 00000000 00000000 0001 03 6458
0000000000000000: 00000002 00000000 00010000 0001 01 7001 @/tmp/.X11-unix/X0
0000000000000000: 00000002 00000000 00010000 0001 01 7002 relative.sock
0000000000000000: 00000002 00000000 00010000 0001 01 7003 /srv/my app/with space.sock
0000000000000000: 00000003 00000000 00000000 0001 03 7004 /srv/my app/with space.sock
0000000000000000: 00000003 00000000 00000000 0001 02    0 /srv/my app/with space.sock
0000000000000000: 00000002 00000000 00000000 0002 01 7005 /srv/log.sock
0000000000000000: 00000002 00000000 00000000 0005 01 7006 /srv/seq.sock
"""


def test_the_table_lists_the_named_sockets_one_can_connect_to() -> None:
    # Not: the unnamed one, the abstract one, an accepted and a pending connection.
    assert unix_table(PROC_NET_UNIX) == {
        ("/var/run/postgresql/.s.PGSQL.5432", 4025),
        ("relative.sock", 7002),
        ("/srv/my app/with space.sock", 7003),
        ("/srv/log.sock", 7005),
        ("/srv/seq.sock", 7006),
    }


@pytest.mark.parametrize(
    ("printed", "path"),
    [
        (b"/w/src", Path("/w/src")),
        (b"/w/my\\ dir/x\\'y", Path("/w/my dir/x'y")),
        (b"$'/w/a\\nb'", None),  # control characters: not decoded
        (b"", None),
    ],
)
def test_the_working_directory_printed_by_bash_is_read_back(
    printed: bytes, path: Path | None
) -> None:
    assert unquoted_path(printed) == path


def test_bash_quotes_a_working_directory_on_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "a b'c\"$d"
    odd.mkdir()
    printed = subprocess.run(
        ["bash", "-c", 'cd "$1" && printf %q "$PWD"', "bash", str(odd)],
        capture_output=True,
        check=True,
    ).stdout
    assert unquoted_path(printed) == odd


@pytest.fixture
def project(outside: Path) -> Path:
    """A project directory outside /tmp and /run, where a host service binds a socket."""
    path = outside / "project"
    path.mkdir()
    return path


def under(paths: Iterable[Path], *dirs: Path) -> list[Path]:
    """The `paths` inside `dirs`: this test's own sockets. (Another test run on the host
    may bind sockets of its own meanwhile; they are reachable too, so they count.)"""
    return [path for path in paths if any(path.is_relative_to(d) for d in dirs)]


def without_foreign_restarts(
    scenario: Callable[[], list[SessionResult]], *dirs: Path
) -> list[SessionResult]:
    """`scenario`'s results, run again (up to five times) while a restart came only
    from sockets outside `dirs`, that another test run on the host bound meanwhile."""
    for _ in range(5):
        results = scenario()
        for result in results:
            assert under(result.restarted_for, *dirs) == [], result.output
        if not any(result.restarted_for for result in results):
            return results
    raise AssertionError("other processes kept binding reachable sockets; run it alone")


def wait_for_socket(path: Path) -> None:
    """Until `path` is listed as bound in /proc/net/unix (bounded)."""
    deadline = time.monotonic() + 5
    while not any(name == str(path) for name, _ in read_unix_table()):
        assert time.monotonic() < deadline, f"{path} never showed up in /proc/net/unix"
        time.sleep(0.02)


def test_the_cover_misses_only_what_was_bound_since(worktree: Path, project: Path) -> None:
    with unix_service(project / "before.sock"):
        cover = SocketCover.now(worktree)
        assert under(cover.paths, project, worktree) == [project / "before.sock"]
        assert under(cover.missing(os.getpid()), project, worktree) == []
        with unix_service(project / "after.sock"), unix_service(worktree / "in-worktree.sock"):
            missing = under(cover.missing(os.getpid()), project, worktree)
            assert missing == sorted([project / "after.sock", worktree / "in-worktree.sock"])
            # Each new socket is reported once.
            assert under(cover.missing(os.getpid()), project, worktree) == []


def test_a_socket_bound_to_a_relative_name_is_found_from_its_holder(
    worktree: Path, project: Path
) -> None:
    code = (
        "import os, socket, sys, time\n"
        "os.chdir(sys.argv[1]); s = socket.socket(socket.AF_UNIX); s.bind('rel.sock')\n"
        "s.listen(); print('bound', flush=True); time.sleep(30)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code, str(project)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "bound\n"
        assert project / "rel.sock" in SocketCover.now(worktree).paths
    finally:
        server.kill()
        server.wait()


@needs_bwrap
def test_a_shell_started_before_the_socket_could_reach_it(worktree: Path, project: Path) -> None:
    """The gap itself: mounts are made once, so a sandbox does not see later covers."""
    path = project / "late.sock"
    command = f"read -t 20 _; {UNIX_CONNECT.format(path=path)}"
    for _ in range(3):
        live = bwrap_sandbox().start(command, worktree=worktree)
        try:
            with unix_service(path):
                wait_for_socket(path)
                assert path in live.uncovered_sockets()
                out, _ = live.proc.communicate(b"\n", timeout=20)
        finally:
            live.stop()
        # (Another test's socket vanishing during bwrap's setup stops it: start again.)
        if not live.cover_vanished(out.decode()):
            break
    assert b"reply b'pong'" in out


@needs_bwrap
@pytest.mark.parametrize("place", ["project", "worktree"])
def test_a_socket_bound_after_the_shell_started_is_out_of_reach_of_the_next_command(
    worktree: Path, project: Path, place: str
) -> None:
    path = (project if place == "project" else worktree) / "service.sock"
    (worktree / "src").mkdir()
    session = BashSession(bwrap_sandbox(), worktree, writable=True)
    try:
        assert session.run("cd src && export MARK=kept", timeout_s=20).exit_code == 0
        with unix_service(path):
            with socket.socket(socket.AF_UNIX) as probe:  # it really answers on the host
                probe.settimeout(3)
                probe.connect(str(path))
                assert probe.recv(4) == b"pong"
            wait_for_socket(path)
            result = session.run(
                f"pwd; echo mark=${{MARK:-gone}}; {UNIX_CONNECT.format(path=path)}", timeout_s=20
            )
            after = session.run("echo again", timeout_s=20)
    finally:
        session.close()
    assert path in result.restarted_for
    first, *rest = result.output.splitlines()
    assert first.startswith("[opus sandbox] the bash session was restarted") and str(path) in first
    assert rest[:2] == [str(worktree / "src"), "mark=gone"], result.output
    assert "pong" not in result.output
    assert "ConnectionRefusedError" in result.output, result.output
    assert path not in after.restarted_for and after.output.endswith("again\n")


@needs_bwrap
def test_a_socket_bound_anew_at_a_covered_path_is_covered_again(
    worktree: Path, project: Path
) -> None:
    path = project / "service.sock"
    session = BashSession(bwrap_sandbox(), worktree, writable=True)
    try:
        with unix_service(path):
            covered = session.run(UNIX_CONNECT.format(path=path), timeout_s=20)
        assert "ConnectionRefusedError" in covered.output, covered.output
        # The service restarts: unlink, bind again. The host's unlink takes the
        # sandbox's /dev/null mount with it, so the new socket would be reachable.
        with unix_service(path):
            wait_for_socket(path)
            result = session.run(UNIX_CONNECT.format(path=path), timeout_s=20)
    finally:
        session.close()
    assert path in result.restarted_for
    assert "pong" not in result.output
    assert "ConnectionRefusedError" in result.output, result.output


OWN_SERVER = """\
import socket, sys, threading
def serve(path):
    s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(); s.settimeout(30)
    while True:
        try:
            conn, _ = s.accept()
        except OSError:
            return
        conn.sendall(b'own!'); conn.close()
for path in sys.argv[1:]:
    threading.Thread(target=serve, args=(path,)).start()
"""


@needs_bwrap
@pytest.mark.parametrize("network", [False, True])
def test_sockets_the_sandbox_makes_keep_working_across_commands(
    worktree: Path, network: bool
) -> None:
    (worktree / "serve.py").write_text(OWN_SERVER)
    connect_both = (
        f"{UNIX_CONNECT.format(path=worktree / 'own.sock')}; "
        f"{UNIX_CONNECT.format(path='/tmp/own.sock')}; echo mark=${{MARK:-gone}}"
    )

    def scenario() -> list[SessionResult]:
        (worktree / "own.sock").unlink(missing_ok=True)
        session = BashSession(bwrap_sandbox(network=network), worktree, writable=True)
        try:
            started = session.run(
                "export MARK=kept; python3 serve.py own.sock /tmp/own.sock >serve.log 2>&1 & "
                "for _ in $(seq 100); do [ -S own.sock ] && [ -S /tmp/own.sock ] && break; "
                "sleep 0.05; done",
                timeout_s=20,
            )
            assert started.exit_code == 0, started.output
            return [session.run(connect_both, timeout_s=20) for _ in range(2)]
        finally:
            session.close()

    for result in without_foreign_restarts(scenario, worktree, Path("/tmp")):
        assert result.output == "reply b'own!'\nreply b'own!'\nmark=kept\n", result.output


@needs_bwrap
def test_the_shell_is_not_restarted_when_nothing_reachable_appeared(
    worktree: Path, project: Path, tmp_path: Path
) -> None:
    """New connections to a covered socket and new sockets in the host's /tmp (private
    in the sandbox) change /proc/net/unix but leave the shell alone."""
    covered = project / "covered.sock"

    def scenario() -> list[SessionResult]:
        session = BashSession(bwrap_sandbox(), worktree, writable=True)
        results = []
        try:
            session.run("export MARK=kept", timeout_s=20)
            for n in range(3):
                with socket.socket(socket.AF_UNIX) as client:
                    client.settimeout(3)
                    client.connect(str(covered))
                    with unix_service(tmp_path / f"host-tmp-{n}.sock"):
                        wait_for_socket(tmp_path / f"host-tmp-{n}.sock")
                        results.append(session.run("echo mark=$MARK", timeout_s=20))
        finally:
            session.close()
        return results

    with unix_service(covered):
        results = without_foreign_restarts(scenario, project, tmp_path)
    assert [result.output for result in results] == ["mark=kept\n"] * 3


@needs_bwrap
def test_each_one_shot_command_covers_the_sockets_live_at_its_start(
    worktree: Path, project: Path
) -> None:
    sandbox = bwrap_sandbox()
    path = project / "service.sock"
    assert sandbox.run("true", worktree=worktree, timeout_s=20).exit_code == 0
    with unix_service(path):
        result = sandbox.run(UNIX_CONNECT.format(path=path), worktree=worktree, timeout_s=20)
    assert "pong" not in result.output
    assert "ConnectionRefusedError" in result.output, result.output


def test_without_isolation_the_shell_is_never_restarted(worktree: Path, project: Path) -> None:
    session = BashSession(sandbox_for(SandboxConfig(kind="none")), worktree, writable=True)
    try:
        session.run("export MARK=kept", timeout_s=20)
        with unix_service(project / "service.sock"):
            result = session.run("echo mark=$MARK", timeout_s=20)
    finally:
        session.close()
    assert result.restarted_for == () and result.output == "mark=kept\n"


@needs_bwrap
@pytest.mark.parametrize("gone", ["service.sock", "subdir/service.sock"])
def test_bwrap_stopping_on_a_socket_that_vanished_is_told_apart(
    worktree: Path, project: Path, gone: str
) -> None:
    """A socket (or its directory) removed between the scan and bwrap's mounts stops
    bwrap before the command runs; that failure, and only that, is started again."""
    path = project / gone
    cover = SocketCover(worktree, [path])
    argv = bwrap_argv(
        shutil.which("bwrap") or "bwrap",
        "echo ran",
        worktree=worktree,
        writable=True,
        network=False,
        home=None,
        state_dir=None,
        sockets=cover.paths,
    )
    failed = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert failed.returncode == 1 and "ran" not in failed.stdout
    assert cover.vanished(failed.stderr), failed.stderr
    assert not SocketCover(worktree, [project / "other.sock"]).vanished(failed.stderr)
    assert not cover.vanished(f"ran\nbwrap: {path}")  # a command's own output


@needs_bwrap
def test_commands_run_while_other_programs_bind_and_remove_sockets(
    worktree: Path, project: Path
) -> None:
    """Another program's short-lived sockets (a test suite's services, one after another)
    each may vanish between a start's scan and bwrap's mounts: the command is started
    again until it runs, never reported as failing on its own."""
    sandbox = bwrap_sandbox()
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            place = project / f"svc-{n}"
            place.mkdir()
            with unix_service(place / "x.sock"):
                stop.wait(0.3)
            shutil.rmtree(place)
            n += 1
            stop.wait(0.5)

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    try:
        results = [sandbox.run("echo ran", worktree=worktree, timeout_s=20) for _ in range(10)]
    finally:
        stop.set()
        churner.join(timeout=10)
    assert [(r.exit_code, r.output) for r in results] == [(0, "ran\n")] * 10
