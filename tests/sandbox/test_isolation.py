"""What a command in the bwrap sandbox can and cannot do (real bwrap, real git)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.config import SandboxConfig
from opus.pipeline.worktree import Worktree
from opus.sandbox import sandbox_for
from opus.sandbox.bwrap import HIDDEN_IN_HOME
from opus.seams import Grant
from tests.conftest import make_repo, run_git
from tests.sandbox.conftest import UNIX_CONNECT, bwrap_sandbox, needs_bwrap, serving, unix_service

pytestmark = [needs_bwrap, pytest.mark.bwrap]

FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-fake\n"


def test_writes_inside_the_worktree_land_on_the_host(worktree: Path) -> None:
    result = bwrap_sandbox().run(
        "mkdir -p pkg && echo hello > pkg/new.txt", worktree=worktree, timeout_s=20
    )
    assert result.exit_code == 0, result.output
    assert (worktree / "pkg" / "new.txt").read_text() == "hello\n"


def test_writes_outside_the_worktree_fail(worktree: Path, outside: Path) -> None:
    target = outside / "planted"
    result = bwrap_sandbox().run(f"echo x > {target}", worktree=worktree, timeout_s=20)
    assert result.exit_code != 0
    assert "Read-only file system" in result.output
    assert not target.exists()


def test_tmp_is_private(worktree: Path, tmp_path: Path) -> None:
    target = tmp_path / "from-inside"
    scratch = Path(f"/tmp/opus-scratch-{os.getpid()}-{time.monotonic_ns()}")  # not on the host
    result = bwrap_sandbox().run(
        f"echo x > {scratch} && mkdir -p {tmp_path} && echo x > {target} && ls /tmp",
        worktree=worktree,
        timeout_s=20,
    )
    assert result.exit_code == 0, result.output
    assert not target.exists()
    assert not scratch.exists()


def test_repo_files_outside_a_linked_worktree_stay_read_only(outside: Path) -> None:
    repo = make_repo(outside / "repo", {"README.md": "original\n"})
    wt = Worktree.ensure(repo, outside / "state", 1, "opus/fr-1-x", None, remote="origin")
    result = bwrap_sandbox().run(f"echo changed > {repo}/README.md", worktree=wt.path, timeout_s=20)
    assert result.exit_code != 0
    assert (repo / "README.md").read_text() == "original\n"


def test_home_is_read_only(worktree: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = outside / "home" / "alice"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    result = bwrap_sandbox().run("echo x > ~/.bashrc", worktree=worktree, timeout_s=20)
    assert result.exit_code != 0
    assert not (home / ".bashrc").exists()


def test_ssh_keys_and_credentials_in_home_are_hidden(
    worktree: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = outside / "home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(FAKE_KEY)
    (home / ".netrc").write_text("machine github.com password hunter2\n")
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "gh" / "hosts.yml").write_text("oauth_token: gho_secret\n")
    (home / "notes.txt").write_text("visible\n")
    monkeypatch.setenv("HOME", str(home))
    result = bwrap_sandbox().run(
        "cat ~/notes.txt; cat ~/.ssh/id_rsa; echo entries=$(ls -A ~/.ssh | wc -l); cat ~/.netrc; "
        "cat ~/.config/gh/hosts.yml; true",
        worktree=worktree,
        timeout_s=20,
    )
    assert "visible" in result.output  # the home itself is readable
    assert "entries=0" in result.output
    for secret in ("OPENSSH PRIVATE KEY", "hunter2", "gho_secret"):
        assert secret not in result.output
    assert (home / ".ssh" / "id_rsa").read_text() == FAKE_KEY  # untouched on the host


def test_credentials_in_the_real_home_are_hidden(worktree: Path) -> None:
    home = Path.home()
    present = [home / rel for rel in HIDDEN_IN_HOME if (home / rel).exists()]
    visible = [
        p
        for p in present
        if (p.is_file() and p.stat().st_size) or (p.is_dir() and any(p.iterdir()))
    ]
    if not visible:
        pytest.skip("no non-empty credential file or directory in this machine's HOME")
    checks = "; ".join(
        f"ls -A {p} | wc -l" if p.is_dir() else f"cat {p} 2>/dev/null | wc -c" for p in visible
    )
    result = bwrap_sandbox().run(checks, worktree=worktree, timeout_s=20)
    assert result.output.split() == ["0"] * len(visible), (visible, result.output)


def test_state_dir_is_hidden_but_the_jobs_worktree_is_not(tmp_path: Path, outside: Path) -> None:
    state = outside / "state"
    own = state / "worktrees" / "job-1"
    other = state / "worktrees" / "job-2"
    own.mkdir(parents=True)
    other.mkdir(parents=True)
    (state / "opus.db").write_text("registry")
    (other / "theirs.txt").write_text("other job")
    result = bwrap_sandbox(state_dir=state).run(
        f"ls -A {state}/worktrees; cat {state}/opus.db; cat {other}/theirs.txt; "
        "echo mine > mine.txt",
        worktree=own,
        timeout_s=20,
    )
    assert "registry" not in result.output
    assert "other job" not in result.output
    assert result.output.split()[0] == "job-1"
    assert (own / "mine.txt").read_text() == "mine\n"


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections until the test ends."""
    server = socket.create_server(("127.0.0.1", 0))
    with serving(server, b""):
        yield server.getsockname()[1]


CONNECT = (
    "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); "
    "print('connected')\""
)


def test_no_network_by_default(worktree: Path, listener: int) -> None:
    result = bwrap_sandbox().run(CONNECT.format(port=listener), worktree=worktree, timeout_s=20)
    assert result.exit_code != 0
    assert "connected" not in result.output


def test_network_when_enabled(worktree: Path, listener: int) -> None:
    result = bwrap_sandbox(network=True).run(
        CONNECT.format(port=listener), worktree=worktree, timeout_s=20
    )
    assert result.exit_code == 0, result.output
    assert "connected" in result.output


def test_a_grant_adds_the_network_and_variables_for_that_program_only(
    worktree: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-secret")
    plain = bwrap_sandbox()
    granted = plain.granting(Grant(network=True, env={"ANTHROPIC_API_KEY": "sk-ant-granted"}))
    command = f'echo "key=$ANTHROPIC_API_KEY"; {CONNECT.format(port=listener)}'
    result = granted.run(command, worktree=worktree, timeout_s=20)
    assert "key=sk-ant-granted" in result.output and "connected" in result.output, result.output
    result = plain.run(command, worktree=worktree, timeout_s=20)  # the sandbox it came from
    assert "key=\n" in result.output and "connected" not in result.output, result.output


def test_a_grant_keeps_its_own_folder_writable_in_a_read_only_worktree(
    worktree: Path, outside: Path
) -> None:
    state = worktree / ".state"
    state.mkdir()
    grant = Grant(writable_inside=(state, outside))  # `outside` is no part of the worktree
    result = bwrap_sandbox().granting(grant).run(
        f"echo a > .state/a && echo wrote-state; echo b > b && echo wrote-worktree; "
        f"echo c > {outside}/c && echo wrote-outside; true",
        worktree=worktree,
        timeout_s=20,
        writable=False,
    )
    assert "wrote-state" in result.output and (state / "a").is_file(), result.output
    assert "wrote-worktree" not in result.output and not (worktree / "b").exists()
    assert "wrote-outside" not in result.output and not (outside / "c").exists()


def test_only_allowed_environment_is_passed(
    worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unlisted = f"HOST_ONLY_{secrets.token_hex(4).upper()}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_parent_secret")
    monkeypatch.setenv(unlisted, "host-value")
    monkeypatch.setenv("LC_MESSAGES", "C.UTF-8")
    result = bwrap_sandbox().run("env", worktree=worktree, timeout_s=20)
    assert "sk-ant-parent-secret" not in result.output
    assert "ghp_parent_secret" not in result.output
    assert unlisted not in result.output
    assert "host-value" not in result.output
    assert "LC_MESSAGES=C.UTF-8" in result.output
    assert "TMPDIR=/tmp" in result.output


def test_pass_env_reaches_the_command(worktree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://127.0.0.1/app")
    cfg = SandboxConfig(kind="bwrap", pass_env=["APP_*"])
    result = sandbox_for(cfg).run("echo $APP_DATABASE_URL", worktree=worktree, timeout_s=20)
    assert result.output.strip() == "postgresql://127.0.0.1/app"


def test_git_dir_of_a_linked_worktree_is_read_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wt = Worktree.ensure(repo, tmp_path / "state", 7, "opus/fr-7-x", None, remote="origin")
    dot_git = (wt.path / ".git").read_text()
    result = bwrap_sandbox().run(
        "git log --oneline -1; "
        "echo 'touch /tmp/pwned' > \"$(git rev-parse --git-common-dir)/hooks/pre-commit\"; "
        "git config core.hooksPath /tmp/evil; "
        "echo 'gitdir: /tmp/evil' > .git; "
        "echo code > code.py",
        worktree=wt.path,
        timeout_s=20,
    )
    assert "initial" in result.output  # git still works inside, read-only
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert "evil" not in (repo / ".git" / "config").read_text()
    assert (wt.path / ".git").read_text() == dot_git
    assert (wt.path / "code.py").exists()


def test_git_dir_inside_the_worktree_is_read_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    config_before = (repo / ".git" / "config").read_text()
    result = bwrap_sandbox().run(
        "echo evil > .git/hooks/post-checkout; git config user.name evil; echo ok > file.txt",
        worktree=repo,
        timeout_s=20,
    )
    assert "Read-only file system" in result.output
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    assert (repo / ".git" / "config").read_text() == config_before
    assert (repo / "file.txt").read_text() == "ok\n"
    assert run_git(repo, "status", "--porcelain") == "?? file.txt"


def test_python_under_home_runs(worktree: Path) -> None:
    result = bwrap_sandbox().run(
        f"python3 -c 'print(6 * 7)' && {sys.executable} -c 'print(1)'",
        worktree=worktree,
        timeout_s=30,
    )
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["42", "1"]


def test_read_only_mode_refuses_writes_in_the_worktree(worktree: Path) -> None:
    (worktree / "existing.txt").write_text("keep\n")
    result = bwrap_sandbox().run(
        "cat existing.txt; echo x > new.txt; echo y >> existing.txt",
        worktree=worktree,
        timeout_s=20,
        writable=False,
    )
    assert result.output.startswith("keep\n")
    assert "Read-only file system" in result.output
    assert not (worktree / "new.txt").exists()
    assert (worktree / "existing.txt").read_text() == "keep\n"


def test_root_cannot_remount_the_host_writable(worktree: Path, outside: Path) -> None:
    result = bwrap_sandbox().run(
        f"mount -o remount,rw,bind / ; mount -o remount,rw,bind {outside}; "
        f"echo x > {outside}/after-remount",
        worktree=worktree,
        timeout_s=20,
    )
    assert not (outside / "after-remount").exists(), result.output


def test_host_processes_and_sockets_are_invisible(worktree: Path) -> None:
    result = bwrap_sandbox().run(
        "ls /proc | grep -c '^[0-9]'; ls -A /run", worktree=worktree, timeout_s=20
    )
    lines = result.output.split()
    assert int(lines[0]) < 10  # only the sandbox's own processes
    assert lines[1:] == []


@pytest.fixture
def unix_server(outside: Path) -> Iterator[Path]:
    """A unix socket server in a project dir outside /run and /tmp, answering `pong`."""
    path = outside / "project" / "service.sock"
    path.parent.mkdir()
    with unix_service(path):
        yield path


def test_unix_sockets_outside_run_and_tmp_are_unreachable(
    worktree: Path, unix_server: Path
) -> None:
    with socket.socket(socket.AF_UNIX) as probe:  # the server really answers on the host
        probe.settimeout(3)
        probe.connect(str(unix_server))
        assert probe.recv(4) == b"pong"
    result = bwrap_sandbox(network=True).run(
        UNIX_CONNECT.format(path=unix_server) + f"; ls {unix_server.parent}",
        worktree=worktree,
        timeout_s=20,
    )
    assert "pong" not in result.output
    assert "ConnectionRefusedError" in result.output, result.output
    assert "service.sock" in result.output  # the directory itself stays readable


def test_a_socket_made_inside_the_sandbox_still_works(worktree: Path) -> None:
    script = (
        "import socket, threading\n"
        "s = socket.socket(socket.AF_UNIX); s.bind('/tmp/own.sock'); s.listen()\n"
        "threading.Thread(target=lambda: s.accept()[0].sendall(b'own')).start()\n"
        "c = socket.socket(socket.AF_UNIX); c.connect('/tmp/own.sock'); print(c.recv(3))\n"
    )
    (worktree / "serve.py").write_text(script)
    result = bwrap_sandbox().run("python3 serve.py", worktree=worktree, timeout_s=20)
    assert result.exit_code == 0, result.output
    assert "b'own'" in result.output


def test_a_virtualenv_under_home_runs_next_to_a_hidden_socket(
    worktree: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = outside / "home" / "alice"
    venv = home / ".local" / "share" / "venvs" / "app"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sock_path = home / ".local" / "share" / "agent.sock"
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(sock_path))
    agent.listen()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{os.environ['PATH']}")
    try:
        result = bwrap_sandbox().run(
            "python -c 'import sys; print(sys.prefix)'; " + UNIX_CONNECT.format(path=sock_path),
            worktree=worktree,
            timeout_s=30,
        )
    finally:
        agent.close()
    assert result.output.splitlines()[0] == str(venv), result.output
    assert "ConnectionRefusedError" in result.output
