"""Shared setup for the CLI end-to-end tests: a real `opus` subprocess and a new user's project.

`run_opus` starts `python -m opus` with a clean environment (no OPUS_*, no API key, HOME in
tmp) and a deadline, so every test sees the CLI the way a new user's shell would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import GIT_ENV, make_repo, run_git
from tests.standins.messages_api import API_KEY, last_tool_results, reply, text, tool_use

RUN_TIMEOUT_S = 60.0
FAST_POLL = {"OPUS_DAEMON__POLL_ACTIVE_S": "0.2", "OPUS_DAEMON__POLL_IDLE_S": "0.5"}


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH and git identity only: nothing from the developer's shell leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        **GIT_ENV,
    }
    env.update(extra or {})
    return env


def run_opus(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout_s: float = RUN_TIMEOUT_S
) -> Result:
    """`python -m opus ARGS` in `cwd`; killed (and the test failed) past `timeout_s`."""
    proc = subprocess.run(
        [sys.executable, "-m", "opus", *args],
        check=False,
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll `condition` until it holds, failing the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s}s")


def fr_note(fr_id: str, title: str, *, repo: str | None = None, **fields: str) -> str:
    """A planned FR note; `fields` are extra frontmatter lines (`key: value`)."""
    lines = ["---", f"id: {fr_id}", f"title: {title}", "status: planned"]
    if repo is not None:
        lines.append(f"repo: {repo}")
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join([*lines, "---", f"# Summary\n\nDo {title.lower()}.\n"])


def project_with_repo(root: Path) -> Path:
    """`root/repo`: a git repo with a bare `origin` (so delivery can push)."""
    repo = make_repo(root / "repo", {"README.md": "# target\n"})
    remote = root / "remote.git"
    run_git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main")
    return repo


def any_fr_responder(request: dict[str, Any]) -> dict[str, Any]:
    """Plays every role for any FR, choosing by the tools offered.

    planner → submit_plan; reviewer → submit_review(approve); coder → writes one file,
    then ends its turn once the write's tool_result comes back.
    """
    names = {tool.get("name") for tool in request.get("tools", [])}
    if "submit_plan" in names:
        plan = {"summary": "Add a marker file.",
                "steps": [{"title": "write marker", "postcondition": "marker.txt exists"}]}
        return reply(tool_use("submit_plan", plan))
    if "submit_review" in names:
        return reply(tool_use("submit_review", {"verdict": "approve", "summary": "fine"}))
    if last_tool_results(request):
        return reply(text("Wrote marker.txt."))
    first = request["messages"][0]["content"]
    body = first if isinstance(first, str) else first[0]["text"]
    fr_line = next((line for line in body.splitlines() if "FR-" in line), "an FR")
    edit = {"command": "create", "path": "marker.txt", "file_text": fr_line + "\n"}
    return reply(tool_use("str_replace_based_edit_tool", edit))


def api_env(base_url: str) -> dict[str, str]:
    """The SDK's own variables, pointing the anthropic engine at the stand-in."""
    return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": API_KEY}
