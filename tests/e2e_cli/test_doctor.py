"""`opus doctor` on a fresh project and on each broken setup: every check listed, each fault
named, the exit code honest, and no state created.

Every run is the real CLI as a subprocess; the remote is a real bare repo (or a loopback
socket that never answers), the forge a loopback stand-in speaking the GitHub API.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.cli import main
from tests.conftest import make_repo, run_git
from tests.e2e_cli.helpers import Result, clean_env, fr_note, run_opus
from tests.standins.forge import ForgeStandin

CHECKS = ["config", "vault", "notes", "git", "repo", "remote", "tests", "sandbox", "limits",
          "engine", "forge", "notify", "database"]
LINE = re.compile(r"^\[(ok  |WARN|FAIL)\] (\w+)\s+(.*)$")
GOOD = {"ANTHROPIC_API_KEY": "sk-test", "OPUS_GIT__DEFAULT_REPO": "code",
        "OPUS_SANDBOX__KIND": "none"}


def _levels(output: str) -> dict[str, tuple[str, str]]:
    found = [LINE.match(line) for line in output.splitlines()]
    return {m[2]: (m[1].strip(), m[3]) for m in found if m}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    return tmp_path / "p"


@pytest.fixture
def code(project: Path, tmp_path: Path) -> Path:
    """`project/code`: a Python repo (so a test command resolves) with a bare `origin`."""
    repo = make_repo(project / "code", {"pyproject.toml": "[project]\nname = 'x'\n"})
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git"))
    run_git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    return repo


def _doctor(project: Path, tmp_path: Path, **env: str) -> tuple[Result, dict[str, tuple[str, str]]]:
    result = run_opus("doctor", cwd=project, env=clean_env(tmp_path, {**GOOD, **env}))
    levels = _levels(result.out)
    assert list(levels) == CHECKS, result.out + result.err
    return result, levels


def _fails(result: Result, levels: dict[str, tuple[str, str]], name: str) -> str:
    """The detail of the one failing check, `name`; the run exited 1."""
    assert result.code == 1, result.out + result.err
    failing = [check for check, (level, _) in levels.items() if level == "FAIL"]
    assert failing == [name], result.out
    return levels[name][1]


def test_fresh_project_without_a_key_fails_naming_anthropic_api_key(
    project: Path, tmp_path: Path
) -> None:
    result = run_opus("doctor", cwd=project, env=clean_env(tmp_path))
    assert result.code == 1, result.err
    levels = _levels(result.out)
    assert list(levels) == CHECKS
    assert levels["engine"][0] == "FAIL" and "ANTHROPIC_API_KEY" in levels["engine"][1]
    # The way to try opus without a key is named where the key is missed.
    assert "`opus demo`" in levels["engine"][1]
    assert 'agents.engine = "command"' in levels["engine"][1]
    assert levels["repo"][0] == "WARN" and "git.default_repo" in levels["repo"][1]
    assert levels["config"] == ("ok", f"loaded from {project / 'opus.toml'}")
    assert levels["vault"][0] == "ok" and "(1 note)" in levels["vault"][1]
    assert levels["database"][0] == "WARN" and "does not exist yet" in levels["database"][1]
    assert not (project / ".opus").exists(), "doctor creates no state"


def test_a_healthy_project_passes_with_warnings(project: Path, code: Path, tmp_path: Path) -> None:
    result, levels = _doctor(project, tmp_path)
    assert result.code == 0, result.out + result.err
    assert not [name for name, (level, _) in levels.items() if level == "FAIL"]
    assert levels["repo"] == ("ok", f"default repo {code}")
    assert levels["remote"] == ("ok", f"origin answers for {code}")
    assert levels["tests"] == ("ok", "default repo: `python3 -m pytest -q`")
    # An unsandboxed run works but must never look fine.
    assert levels["sandbox"][0] == "WARN" and "WITHOUT isolation" in levels["sandbox"][1]
    assert levels["notify"][0] == "WARN"


def test_outside_a_project_doctor_fails_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_opus("doctor", cwd=empty, env=clean_env(tmp_path))
    assert result.code == 1
    assert _levels(result.out)["vault"][0] == "FAIL"
    assert list(empty.iterdir()) == [], "no ./.opus/opus.db, nothing at all"


def test_a_repo_without_the_push_remote_fails(project: Path, code: Path, tmp_path: Path) -> None:
    run_git(code, "remote", "remove", "origin")
    detail = _fails(*_doctor(project, tmp_path), "remote")
    assert f"{code} has no remote 'origin'" in detail and "git remote add origin" in detail


def test_a_relative_remote_path_fails_naming_the_absolute_one(
    project: Path, code: Path, tmp_path: Path
) -> None:
    # `../origin.git` answers from the repo, but opus pushes from worktrees elsewhere.
    run_git(code, "remote", "set-url", "origin", "../../origin.git")
    detail = _fails(*_doctor(project, tmp_path), "remote")
    assert "relative path '../../origin.git'" in detail
    assert f"remote set-url origin {tmp_path / 'origin.git'}" in detail


def test_a_remote_that_refuses_fails(project: Path, code: Path, tmp_path: Path) -> None:
    run_git(code, "remote", "set-url", "origin", "http://127.0.0.1:1/nobody.git")
    detail = _fails(*_doctor(project, tmp_path), "remote")
    assert "remote origin (http://127.0.0.1:1/nobody.git)" in detail
    assert "does not answer" in detail


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_a_remote_that_never_answers_fails_after_the_timeout(
    project: Path, code: Path, tmp_path: Path, silent_server: int
) -> None:
    run_git(code, "remote", "set-url", "origin", f"http://127.0.0.1:{silent_server}/r.git")
    detail = _fails(*_doctor(project, tmp_path), "remote")
    assert "did not answer within 10s" in detail


def test_a_command_engine_that_does_not_exist_fails(
    project: Path, code: Path, tmp_path: Path
) -> None:
    env = {"OPUS_AGENTS__ENGINE": "command", "OPUS_AGENTS__COMMAND": '["/nonexistent/agent"]'}
    detail = _fails(*_doctor(project, tmp_path, **env), "engine")
    assert "agents.command[0] '/nonexistent/agent' does not exist" in detail
    script = project / "agent.sh"
    script.write_text("#!/bin/sh\n")
    env["OPUS_AGENTS__COMMAND"] = f'["{script}"]'
    assert "is not executable" in _fails(*_doctor(project, tmp_path, **env), "engine")
    script.chmod(0o755)
    result, levels = _doctor(project, tmp_path, **env)
    assert result.code == 0 and levels["engine"] == ("ok", f"command: {script}")


def test_a_claude_binary_that_is_missing_fails(project: Path, code: Path, tmp_path: Path) -> None:
    env = {"OPUS_AGENTS__ENGINE": "claude-code", "OPUS_AGENTS__CLAUDE_BIN": "no-such-claude"}
    detail = _fails(*_doctor(project, tmp_path, **env), "engine")
    assert "agents.claude_bin 'no-such-claude' is not on PATH" in detail


def test_the_claude_engine_in_the_sandbox_needs_its_credential_in_the_environment(
    project: Path, code: Path, tmp_path: Path
) -> None:
    claude = tmp_path / "claude"
    claude.write_text("#!/bin/sh\n")
    claude.chmod(0o755)
    env = {"OPUS_AGENTS__ENGINE": "claude-code", "OPUS_AGENTS__CLAUDE_BIN": str(claude),
           "OPUS_SANDBOX__KIND": "bwrap", "ANTHROPIC_API_KEY": ""}
    detail = _fails(*_doctor(project, tmp_path, **env), "engine")
    assert "hides ~/.claude" in detail and "CLAUDE_CODE_OAUTH_TOKEN" in detail
    _, levels = _doctor(project, tmp_path, **{**env, "ANTHROPIC_API_KEY": "sk-test"})
    assert levels["engine"] == ("ok", f"claude-code at {claude}, in the sandbox with the network "
                                "and ANTHROPIC_API_KEY, which the commands it runs can use too")
    _, levels = _doctor(project, tmp_path, **{**env, "OPUS_SANDBOX__KIND": "none"})
    assert levels["engine"][0] == "WARN" and "WITHOUT isolation" in levels["engine"][1]


def test_a_planned_frs_test_command_that_cannot_run_fails_naming_the_fr(
    project: Path, code: Path, tmp_path: Path
) -> None:
    other = make_repo(project / "other", {"README.md": "# no markers here\n"})
    run_git(other, "remote", "add", "origin", str(tmp_path / "origin.git"))
    planned = project / "vault" / "10_features" / "03_planned"
    planned.joinpath("FR-7.md").write_text(
        fr_note("FR-7", "Missing tool", repo="code", test_command="nosuchtool -q"))
    planned.joinpath("FR-8.md").write_text(fr_note("FR-8", "No tests", repo="other"))
    detail = _fails(*_doctor(project, tmp_path), "tests")
    assert "FR-7: test command `nosuchtool -q`: `nosuchtool` is not on PATH" in detail
    assert f"FR-8: no test command for {other}" in detail


def test_an_invalid_planned_note_fails_naming_it(project: Path, code: Path, tmp_path: Path) -> None:
    planned = project / "vault" / "10_features" / "03_planned"
    planned.joinpath("broken.md").write_text("---\nid: FR-9\nstatus: planned\n---\nNo title.\n")
    detail = _fails(*_doctor(project, tmp_path), "notes")
    assert "1 note(s) opus cannot use: 10_features/03_planned/broken.md: " in detail
    assert "title" in detail


def test_a_forge_token_is_tried_against_the_forge(
    project: Path, code: Path, tmp_path: Path
) -> None:
    with ForgeStandin("github") as forge:
        env = {"OPUS_PR__PROVIDER": "github", "OPUS_PR__API_URL": forge.api_url,
               "OPUS_PR__REPOSITORY": "acme/widgets", "GITHUB_TOKEN": "wrong"}
        detail = _fails(*_doctor(project, tmp_path, **env), "forge")
        assert "HTTP 401" in detail and "$GITHUB_TOKEN" in detail
        result, levels = _doctor(project, tmp_path, **{**env, "GITHUB_TOKEN": forge.token})
        assert result.code == 0, result.out
        assert levels["forge"] == ("ok", "github: the token in $GITHUB_TOKEN is accepted")
        assert [r.method for r in forge.requests] == ["GET", "GET"], "one GET per run"
    del env["GITHUB_TOKEN"]
    assert "needs a token in $GITHUB_TOKEN" in _fails(*_doctor(project, tmp_path, **env), "forge")


def test_a_notify_url_that_does_not_parse_fails(project: Path, code: Path, tmp_path: Path) -> None:
    detail = _fails(*_doctor(project, tmp_path, OPUS_NOTIFY__URLS='["nosuchscheme://x"]'),
                    "notify")
    assert "notify.urls[0] (nosuchscheme://…) is not a valid apprise URL" in detail


def test_bwrap_sandbox_is_really_tried(project: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    main(["doctor"])
    sandbox = _levels(capsys.readouterr().out)["sandbox"]
    assert sandbox[0] == "ok" and sandbox[1].startswith("bwrap ") and "network off" in sandbox[1]


def test_a_default_repo_that_is_not_a_repository_fails(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    (project / "not-a-repo").mkdir()
    monkeypatch.setenv("OPUS_GIT__DEFAULT_REPO", "not-a-repo")
    monkeypatch.setenv("OPUS_VAULT__PATH", "elsewhere")
    assert main(["doctor"]) == 1
    levels = _levels(capsys.readouterr().out)
    assert levels["repo"][0] == "FAIL" and "not a git repository" in levels["repo"][1]
    assert levels["vault"][0] == "FAIL" and "opus init" in levels["vault"][1]
