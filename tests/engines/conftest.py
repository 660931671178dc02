"""Fixtures for the engine tests: the Messages API stand-in, a real sandbox, real repos."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role
from opus.engines.anthropic_engine import AnthropicEngine
from opus.sandbox import bwrap_available, sandbox_for
from opus.seams import AgentTask, Sandbox
from tests.conftest import make_repo
from tests.standins.messages_api import API_KEY, MessagesAPI

SANDBOX_CFG = SandboxConfig(kind="bwrap" if bwrap_available() else "none", command_timeout_s=30)
REPO_FILES = {
    "README.md": "# demo\n",
    "src/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


@pytest.fixture
def api() -> Iterator[MessagesAPI]:
    with MessagesAPI() as server:
        yield server


@pytest.fixture
def sandbox() -> Sandbox:
    return sandbox_for(SANDBOX_CFG)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", REPO_FILES)


def make_engine(api: MessagesAPI, *, max_retries: int = 0, **agents: Any) -> AnthropicEngine:
    """The real engine on the real SDK, pointed at the stand-in."""
    cfg = AgentsConfig(max_retries=max_retries, **agents)
    client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=max_retries)
    return AnthropicEngine(cfg, SANDBOX_CFG, client=client)


@pytest.fixture
def make_task(repo: Path, sandbox: Sandbox) -> Callable[..., AgentTask]:
    def build(role: Role, **overrides: Any) -> AgentTask:
        fields: dict[str, Any] = {
            "role": role,
            "system_prompt": f"You are the {role}.",
            "user_message": "# Feature request FR-7: Add subtraction\n\nAdd sub(a, b).",
            "worktree": repo,
            "sandbox": sandbox,
            "model": "claude-sonnet-4-6",
            "max_turns": 20,
            "max_tokens": 1_000_000,
            "timeout_s": 60,
            "budget_usd": 5.0,
        }
        fields.update(overrides)
        return AgentTask(**fields)

    return build


def install_fake_claude(script_text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put an executable `claude` holding `script_text` first on PATH, in a new directory
    under /var/tmp (which the sandbox shows read-only, unlike a private /tmp); that
    directory, for the fake's own files."""
    root = Path(tempfile.mkdtemp(prefix="opus-fake-claude-", dir="/var/tmp"))
    script = root / "bin" / "claude"
    script.parent.mkdir()
    script.write_text(script_text)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return root
