"""`opus.testing.engine.ScriptedEngine` on real git repos."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from opus.domain import Role
from opus.engines.base import AgentFailed
from opus.errors import EngineError
from opus.prompts import messages
from opus.seams import AgentTask
from opus.testing.engine import (
    DEMO_MODULE,
    DEMO_TEST,
    REHEARSAL,
    Bash,
    ScriptedEngine,
    Submit,
    Write,
)
from tests.conftest import run_git

TaskFactory = Callable[..., AgentTask]


def test_demo_plans_codes_and_approves(make_task: TaskFactory, repo: Path) -> None:
    engine = ScriptedEngine.demo()
    message = messages.planner_message("FR-42", "Anything", "Any body.")
    plan = engine.run(make_task(Role.PLANNER, user_message=message))
    assert plan.stop_reason == "submitted"
    assert 1 <= len(plan.output["steps"]) <= 2
    assert plan.output["summary"].startswith(REHEARSAL) and "FR-42" in plan.output["summary"]

    code = engine.run(make_task(Role.CODER, user_message=message))
    assert code.stop_reason == "end_turn"
    assert "FR-42" in (repo / DEMO_MODULE).read_text()
    check = subprocess.run(["python3", DEMO_TEST], cwd=repo, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    assert set(run_git(repo, "status", "--short").split()) >= {"??", DEMO_MODULE, DEMO_TEST}

    review = engine.run(make_task(Role.REVIEWER, user_message=message))
    assert review.stop_reason == "submitted"
    assert review.output["verdict"] == "approve"
    assert review.cost_usd == 0 and review.usage.total == 0
    assert "Rehearsal" in review.report
    assert [t.role for t in engine.tasks] == [Role.PLANNER, Role.CODER, Role.REVIEWER]


def test_rounds_per_iteration(make_task: TaskFactory) -> None:
    request = {
        "verdict": "request_changes",
        "summary": "Needs a test.",
        "comments": [{"path": "src/calc.py", "line": 1, "body": "Test sub."}],
    }
    approve = {"verdict": "approve", "summary": "Good.", "comments": []}
    engine = ScriptedEngine({Role.REVIEWER: [[Submit(request)], [Submit(approve)]]})
    verdicts = [engine.run(make_task(Role.REVIEWER)).output["verdict"] for _ in range(3)]
    assert verdicts == ["request_changes", "approve", "approve"]


def test_steps_really_act(make_task: TaskFactory, repo: Path) -> None:
    engine = ScriptedEngine({Role.CODER: [[Write("notes/a.txt", "hi\n"), Bash("cat notes/a.txt")]]})
    result = engine.run(make_task(Role.CODER))
    assert result.stop_reason == "end_turn"
    assert (repo / "notes/a.txt").read_text() == "hi\n"
    assert engine.tool_log[-1][1].endswith("hi\n")


def test_script_errors_are_loud(make_task: TaskFactory) -> None:
    with pytest.raises(EngineError, match="no script"):
        ScriptedEngine({}).run(make_task(Role.PLANNER))
    with pytest.raises(EngineError, match="read-only"):
        ScriptedEngine({Role.PLANNER: [[Write("x.py", "")]]}).run(make_task(Role.PLANNER))
    with pytest.raises(AgentFailed, match="without a Submit"):
        ScriptedEngine({Role.PLANNER: [[Bash("ls")]]}).run(make_task(Role.PLANNER))
    with pytest.raises(EngineError, match="invalid"):
        ScriptedEngine({Role.PLANNER: [[Submit({"summary": "x"})]]}).run(make_task(Role.PLANNER))
