"""Engines `command` and `claude-code`, with real processes in real worktrees."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role
from opus.engines.base import SCRATCH_DIR, AgentFailed
from opus.engines.claude_code import MAX_ARG_CHARS, ClaudeCodeEngine
from opus.engines.command_engine import CommandEngine
from opus.errors import EngineError
from opus.sandbox import sandbox_for
from opus.seams import AgentTask
from tests.engines.conftest import SANDBOX_CFG, install_fake_claude
from tests.standins.messages_api import MessagesAPI

TaskFactory = Callable[..., AgentTask]
PLAN = {"summary": "Add sub().", "steps": [{"title": "Write sub", "postcondition": "pytest ok"}]}


def command_engine(script: str, *args: str) -> CommandEngine:
    return CommandEngine(
        AgentsConfig(engine="command", command=["sh", "-c", script, *args]), SANDBOX_CFG
    )


def test_command_coder_edits_and_summarises(make_task: TaskFactory, repo: Path) -> None:
    engine = command_engine(
        'grep -q "FR-7" "$0" && printf "\\ndef sub(a, b):\\n    return a - b\\n" >> src/calc.py'
        ' && echo "coder as $1: added sub"',
        "{prompt_file}",
        "{role}",
    )
    result = engine.run(make_task(Role.CODER))
    assert result.stop_reason == "end_turn"
    assert result.output["summary"].endswith("coder as coder: added sub")
    assert "def sub(a, b):" in (repo / "src/calc.py").read_text()
    assert not (repo / SCRATCH_DIR).exists(), "the scratch folder is removed"


def test_command_planner_writes_output_file(make_task: TaskFactory, repo: Path) -> None:
    plan = json.dumps(PLAN)
    engine = command_engine(
        f'grep -q submit_plan "$0" && grep -q "$1" "$0" && echo \'{plan}\' > "$1"',
        "{prompt_file}",
        "{output_file}",
    )
    result = engine.run(make_task(Role.PLANNER))
    assert result.stop_reason == "submitted"
    assert result.output == PLAN


@pytest.mark.parametrize(
    ("script", "match"),
    [
        ("true", "did not write"),
        ('echo \'{"verdict": "meh"}\' > "$0"', "unusable"),
        ("echo boom; exit 7", "exited 7"),
    ],
)
def test_command_failures_fail_the_stage(make_task: TaskFactory, script: str, match: str) -> None:
    with pytest.raises(AgentFailed, match=match):
        command_engine(script, "{output_file}").run(make_task(Role.REVIEWER))


def test_command_timeout(make_task: TaskFactory) -> None:
    result = command_engine("sleep 10").run(make_task(Role.CODER, timeout_s=0.5))
    assert result.stop_reason == "timeout"


# ------------------------------------------------------------------------ claude-code

FAKE_CLAUDE = r"""#!/usr/bin/env python3
# A stand-in for the Claude Code CLI: runs what a prompt-injected agent would through its
# "Bash tool" (a child shell, which inherits its environment), reports its argv, cwd,
# stdin, environment and what the shell saw to the test over loopback (the worktree may
# be read-only), and answers like `claude -p`.
import json, os, subprocess, sys, time, urllib.request
from pathlib import Path

root = Path(__file__).resolve().parent.parent
report = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
if sys.argv[2:3] == ["--output-format"]:
    report["stdin"] = sys.stdin.read()
if (root / "attack.sh").exists():
    shell = subprocess.run(["sh", str(root / "attack.sh")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
    report["attack"] = shell.stdout
request = urllib.request.Request((root / "report_url").read_text(), json.dumps(report).encode())
urllib.request.urlopen(request, timeout=10).close()
if (root / "hang").exists():
    time.sleep(60)
print("some progress on stderr", file=sys.stderr)
sys.stdout.write((root / "reply.json").read_text())
"""


class _Reports(BaseHTTPRequestHandler):
    """Keeps the body of each POST in the server's `reports`."""

    timeout = 10

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.reports.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class FakeClaude:
    """The fake CLI's directory (outside the worktree and outside /tmp, so the sandbox
    shows it read-only) and what each of its runs reported."""

    root: Path
    reports: list[dict[str, Any]]

    def reply(self, result: str, **fields: object) -> None:
        data = {
            "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1200,
            "duration_api_ms": 1100, "num_turns": 4, "result": result, "session_id": "abc",
            "total_cost_usd": 0.0421,
            "usage": {"input_tokens": 120, "cache_creation_input_tokens": 900,
                      "cache_read_input_tokens": 3000, "output_tokens": 450},
            **fields,
        }  # fmt: skip
        (self.root / "reply.json").write_text(json.dumps(data) + "\n")

    def log(self, name: str) -> Any:
        assert self.reports, "the fake claude never reported"
        return self.reports[-1][name]

    def argv(self) -> list[str]:
        return list(self.log("argv"))

    def env(self) -> dict[str, str]:
        return dict(self.log("env"))


@pytest.fixture
def fake_claude(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClaude]:
    """Install a fake `claude` on PATH, in a directory under /var/tmp, and the loopback
    server it reports to."""
    root = install_fake_claude(FAKE_CLAUDE, monkeypatch)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Reports)
    server.reports = []  # type: ignore[attr-defined]
    (root / "report_url").write_text(f"http://127.0.0.1:{server.server_address[1]}/")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield FakeClaude(root, server.reports)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def claude_engine(**environ: str) -> ClaudeCodeEngine:
    return ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SANDBOX_CFG, environ=environ)


PLANNER_WRITES = """
echo x > planted && echo "wrote worktree"
echo x > "$CLAUDE_CONFIG_DIR/state.json" && echo "wrote config"
"""


def test_claude_code_planner(make_task: TaskFactory, repo: Path, fake_claude: FakeClaude) -> None:
    fake_claude.reply(f"I read the code.\n\n```json\n{json.dumps(PLAN, indent=2)}\n```\n")
    (fake_claude.root / "attack.sh").write_text(PLANNER_WRITES)
    result = claude_engine().run(make_task(Role.PLANNER, max_turns=9))
    assert result.stop_reason == "submitted"
    assert result.output == PLAN
    assert result.cost_usd == pytest.approx(0.0421)
    assert result.usage.total == 120 + 900 + 3000 + 450
    assert result.turns == 4
    argv = fake_claude.argv()
    assert argv[0] == "-p" and "FR-7" in argv[1]
    assert argv[argv.index("--max-turns") + 1] == "9"
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-6"
    assert "Edit" in argv[argv.index("--disallowedTools") + 1]
    assert "You are the planner." in argv[argv.index("--append-system-prompt") + 1]
    assert fake_claude.log("cwd") == str(repo)
    if SANDBOX_CFG.kind == "bwrap":  # the worktree is read-only, but for claude's own state
        assert "wrote config" in fake_claude.log("attack"), fake_claude.log("attack")
        assert "wrote worktree" not in fake_claude.log("attack")
        assert not (repo / "planted").exists()
    assert not (repo / SCRATCH_DIR).exists(), "claude's scratch folder is removed"


def test_claude_code_coder_long_prompt_goes_through_stdin(
    make_task: TaskFactory, fake_claude: FakeClaude
) -> None:
    fake_claude.reply("Implemented sub().")
    message = "FR-7 " + "x" * MAX_ARG_CHARS
    result = claude_engine().run(make_task(Role.CODER, user_message=message))
    assert result.stop_reason == "end_turn"
    assert result.output == {"summary": "Implemented sub()."}
    assert fake_claude.log("stdin") == message
    argv = fake_claude.argv()
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"


def test_claude_code_outcomes(make_task: TaskFactory, fake_claude: FakeClaude) -> None:
    engine = claude_engine()
    fake_claude.reply("no json block here")
    with pytest.raises(AgentFailed, match="json"):
        engine.run(make_task(Role.REVIEWER))
    fake_claude.reply("Credit balance is too low", is_error=True, subtype="error_during_execution")
    with pytest.raises(AgentFailed, match="Credit balance"):
        engine.run(make_task(Role.CODER))
    fake_claude.reply("", subtype="error_max_turns")
    assert engine.run(make_task(Role.CODER)).stop_reason == "max_turns"


def test_claude_code_missing_binary(make_task: TaskFactory) -> None:
    engine = ClaudeCodeEngine(AgentsConfig(claude_bin="no-such-claude-cli"), SANDBOX_CFG)
    with pytest.raises(EngineError, match=r"agents\.claude_bin"):
        engine.run(make_task(Role.CODER))


def test_claude_code_without_json_result(make_task: TaskFactory, fake_claude: FakeClaude) -> None:
    (fake_claude.root / "reply.json").write_text("Error: not logged in\n")
    with pytest.raises(EngineError, match="without a JSON result"):
        claude_engine().run(make_task(Role.CODER))


ATTACK = """
echo pwned > {outside}/escaped && echo "wrote outside the worktree"
echo pwned > "$HOME/planted" && echo "wrote in HOME"
cat "$HOME/.ssh/id_ed25519"
cat "$HOME/.claude/.credentials.json"
echo "token=$GITHUB_TOKEN"
echo work > written-by-agent && echo "wrote in the worktree"
python3 -c 'import os, urllib.request as u
try:
    u.urlopen(os.environ["ANTHROPIC_BASE_URL"], timeout=5)
except Exception as exc:
    print("api:", exc)
'
"""


@pytest.mark.skipif(SANDBOX_CFG.kind == "none", reason="bubblewrap is not installed")
def test_claude_code_runs_in_the_sandbox(
    make_task: TaskFactory, repo: Path, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a prompt-injected claude tries (writes outside the worktree, reads secrets in
    $HOME and the environment) fails; the worktree, its credential and the API work."""
    home = fake_claude.root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- sekrit\n")
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text('{"accessToken": "sk-ant-oat-sekrit"}\n')
    (fake_claude.root / "attack.sh").write_text(ATTACK.format(outside=fake_claude.root))
    fake_claude.reply("Implemented sub().")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_sekrit")
    with MessagesAPI() as api:
        engine = claude_engine(ANTHROPIC_API_KEY="sk-ant-api-key", ANTHROPIC_BASE_URL=api.base_url)
        sandbox = sandbox_for(SANDBOX_CFG)  # made now: it takes HOME and the env as they are
        result = engine.run(make_task(Role.CODER, sandbox=sandbox))
    assert result.output == {"summary": "Implemented sub()."}
    attack = fake_claude.log("attack")
    assert "wrote in the worktree" in attack and (repo / "written-by-agent").is_file()
    assert not (fake_claude.root / "escaped").exists() and "wrote outside" not in attack
    assert not (home / "planted").exists() and "wrote in HOME" not in attack
    assert "sekrit" not in attack and "token=\n" in attack, attack
    assert "api: HTTP Error" in attack, "the network reaches the API, which answers"
    env = fake_claude.env()
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-api-key"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CONFIG_DIR"] == str(repo / SCRATCH_DIR / "claude")
    assert "GITHUB_TOKEN" not in env
    assert not (repo / SCRATCH_DIR).exists(), "claude's config dir went with the run"


def test_claude_code_timeout_stops_it(make_task: TaskFactory, fake_claude: FakeClaude) -> None:
    fake_claude.reply("never sent")
    (fake_claude.root / "hang").touch()
    started = time.monotonic()
    result = claude_engine().run(make_task(Role.CODER, timeout_s=1.5))
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 10


def test_claude_code_without_a_sandbox_runs_as_the_user(
    make_task: TaskFactory, repo: Path, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sandbox.kind = "none"`: claude runs directly, with opus's environment and the
    user's own claude config, as it did before it ran in the sandbox."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-users-key")
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    fake_claude.reply("Implemented sub().")
    engine = ClaudeCodeEngine(AgentsConfig(engine="claude-code"), SandboxConfig(kind="none"))
    assert engine.run(make_task(Role.CODER)).output == {"summary": "Implemented sub()."}
    env = fake_claude.env()
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-users-key" and "CLAUDE_CONFIG_DIR" not in env
    assert fake_claude.log("cwd") == str(repo)
