"""The `anthropic` engine driving the real SDK against the Messages API stand-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opus.domain import Role, Usage
from opus.engines.base import AgentFailed
from opus.engines.pricing import cost_usd
from opus.seams import AgentTask
from tests.engines.conftest import make_engine
from tests.standins.messages_api import (
    MessagesAPI,
    last_tool_results,
    reply,
    text,
    tool_result_text,
    tool_use,
)

PLAN = {
    "summary": "Add sub() next to add() and test it.",
    "steps": [
        {"title": "Add sub to src/calc.py", "postcondition": "calc.sub(3, 1) == 2"},
        {"title": "Test sub", "postcondition": "pytest tests/test_calc.py passes"},
    ],
}

TaskFactory = Callable[..., AgentTask]


def expect_result(containing: str, then: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """A scripted reply that first asserts the tool_result the engine sent back."""

    def check(request: dict[str, Any]) -> dict[str, Any]:
        results = last_tool_results(request)
        assert results, "expected a tool_result in the latest user turn"
        assert containing in tool_result_text(results[0]), tool_result_text(results[0])
        return then

    return check


LONG_PROMPT = "You are the planner.\n" + "Read the code before you plan each step. " * 300


def test_planner_round_trip(api: MessagesAPI, make_task: TaskFactory) -> None:
    activity: list[str] = []
    api.add(
        reply(text("Let me look around."), tool_use("bash", {"command": "ls src tests"})),
        expect_result("calc.py", reply(tool_use("submit_plan", PLAN))),
    )
    task = make_task(Role.PLANNER, system_prompt=LONG_PROMPT, on_activity=activity.append)
    result = make_engine(api).run(task)

    assert result.stop_reason == "submitted"
    assert result.output == PLAN
    assert result.turns == 2
    # The usage is what the API reported, turn by turn; the second turn reads from the
    # cache what the first one wrote (system prompt, tools, first message).
    first_usage, second_usage = (r["usage"] for r in api.replies)
    assert result.usage == Usage(
        sum(r["usage"]["input_tokens"] for r in api.replies),
        sum(r["usage"]["output_tokens"] for r in api.replies),
        second_usage["cache_read_input_tokens"],
        first_usage["cache_creation_input_tokens"] + second_usage["cache_creation_input_tokens"],
    )
    assert first_usage["cache_creation_input_tokens"] > 2048
    assert second_usage["cache_read_input_tokens"] == first_usage["cache_creation_input_tokens"]
    assert result.cost_usd == pytest.approx(cost_usd("claude-sonnet-4-6", result.usage))
    assert result.cost_usd > 0
    first = api.bodies[0]
    assert first["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert [t["name"] for t in first["tools"]] == [
        "str_replace_based_edit_tool",
        "bash",
        "submit_plan",
    ]
    assert first["tools"][0]["type"] == "text_editor_20250728"
    assert first["tools"][1]["type"] == "bash_20250124"
    assert "FR-7" in first["messages"][0]["content"][0]["text"]
    # Only the latest user turn carries the message breakpoint.
    second = api.bodies[1]["messages"]
    assert "cache_control" not in second[0]["content"][-1]
    assert second[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert any(line.startswith("bash: ls src tests") for line in activity)
    assert api.requests[0]["headers"]["anthropic-version"]


def test_a_short_prompt_is_not_cached(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(reply(tool_use("submit_plan", PLAN)))
    result = make_engine(api).run(make_task(Role.PLANNER))
    assert result.usage.cache_write_tokens == result.usage.cache_read_tokens == 0
    assert result.usage.input_tokens > 0


def test_planner_bash_is_read_only(api: MessagesAPI, make_task: TaskFactory, repo: Path) -> None:
    api.add(
        reply(tool_use("bash", {"command": "touch planted.txt"})),
        expect_result("exit code: 1", reply(tool_use("submit_plan", PLAN))),
    )
    result = make_engine(api).run(make_task(Role.PLANNER))
    assert result.stop_reason == "submitted"
    assert not (repo / "planted.txt").exists()


def test_coder_edits_real_files(api: MessagesAPI, make_task: TaskFactory, repo: Path) -> None:
    editor = "str_replace_based_edit_tool"
    api.add(
        reply(tool_use(editor, {"command": "view", "path": "src/calc.py"})),
        expect_result(
            "return a + b",
            reply(
                tool_use(
                    editor,
                    {
                        "command": "str_replace",
                        "path": "src/calc.py",
                        "old_str": "    return a + b\n",
                        "new_str": "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
                    },
                )
            ),
        ),
        expect_result(
            "edited",
            reply(
                tool_use(
                    editor,
                    {
                        "command": "create",
                        "path": str(repo / "tests" / "test_sub.py"),
                        "file_text": "from calc import sub\n\n\ndef test_sub():\n"
                        "    assert sub(3, 1) == 2\n",
                    },
                )
            ),
        ),
        expect_result(
            "created",
            reply(
                tool_use(
                    "bash", {"command": "cd src && python -c 'import calc; print(calc.sub(9, 4))'"}
                )
            ),
        ),
        expect_result("5", reply(text("Added sub() and a test."))),
    )
    result = make_engine(api).run(make_task(Role.CODER))

    assert result.stop_reason == "end_turn"
    assert result.output == {"summary": "Added sub() and a test."}
    assert "def sub(a, b):" in (repo / "src/calc.py").read_text()
    assert (repo / "tests/test_sub.py").read_text().startswith("from calc import sub")
    assert [t["name"] for t in api.bodies[0]["tools"]] == ["str_replace_based_edit_tool", "bash"]


@pytest.mark.parametrize(
    "review",
    [
        {"verdict": "approve", "summary": "Does what the FR asks.", "comments": []},
        {
            "verdict": "request_changes",
            "summary": "sub() is untested.",
            "comments": [
                {"path": "src/calc.py", "line": 4, "body": "Add a test for negative numbers."},
                {"path": None, "line": None, "body": "Update the README."},
            ],
        },
    ],
)
def test_reviewer_submits(api: MessagesAPI, make_task: TaskFactory, review: dict[str, Any]) -> None:
    sent = {k: v for k, v in review.items() if v is not None}
    sent["comments"] = [{k: v for k, v in c.items() if v is not None} for c in review["comments"]]
    api.add(reply(tool_use("submit_review", sent)))
    result = make_engine(api).run(make_task(Role.REVIEWER))
    assert result.stop_reason == "submitted"
    assert result.output == review
    assert api.bodies[0]["tools"][-1]["name"] == "submit_review"


def test_malformed_submit_asks_to_resubmit(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(
        reply(tool_use("submit_review", {"verdict": "maybe", "summary": ""})),
        expect_result(
            "call submit_review again",
            reply(tool_use("submit_review", {"verdict": "approve", "summary": "Fine."})),
        ),
    )
    result = make_engine(api).run(make_task(Role.REVIEWER))
    assert result.output["verdict"] == "approve"
    error = last_tool_results(api.bodies[1])[0]
    assert error["is_error"] is True
    assert "verdict" in tool_result_text(error)


def test_planner_is_nudged_then_submits(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(reply(text("My plan: add sub().")), reply(tool_use("submit_plan", PLAN)))
    result = make_engine(api).run(make_task(Role.PLANNER))
    assert result.stop_reason == "submitted"
    nudge = api.bodies[1]["messages"][-1]["content"][0]["text"]
    assert "call submit_plan" in nudge.lower()


def test_planner_that_never_submits_fails_the_stage(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    api.add(*(reply(text("Here is my plan in prose.")) for _ in range(3)))
    with pytest.raises(AgentFailed, match="without calling submit_plan") as caught:
        make_engine(api).run(make_task(Role.PLANNER))
    assert caught.value.partial.turns == 3
    assert caught.value.partial.cost_usd > 0


def test_same_call_four_times_is_a_loop(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(*(reply(tool_use("bash", {"command": "git status"})) for _ in range(4)))
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.stop_reason == "loop"
    assert "git status" in result.report
    assert "kept" in result.report
    assert len(api.requests) == 4


def test_same_failing_call_repeated_is_a_loop(api: MessagesAPI, make_task: TaskFactory) -> None:
    bad = {"command": "view", "path": "../outside.txt"}
    editor = "str_replace_based_edit_tool"
    for n in range(3):
        api.add(reply(tool_use(editor, bad)), reply(tool_use("bash", {"command": f"echo {n}"})))
    result = make_engine(api).run(make_task(Role.CODER))
    assert result.stop_reason == "loop"
    assert "failing" in result.report and "outside.txt" in result.report


def test_max_turns(api: MessagesAPI, make_task: TaskFactory) -> None:
    api.add(*(reply(tool_use("bash", {"command": f"echo {n}"})) for n in range(5)))
    result = make_engine(api).run(make_task(Role.CODER, max_turns=2))
    assert result.stop_reason == "max_turns"
    assert result.turns == 2
    assert len(api.requests) == 2
    assert "2 turns" in result.report


def test_stage_token_cap(api: MessagesAPI, make_task: TaskFactory) -> None:
    big = {"input_tokens": 6000}
    api.add(*(reply(tool_use("bash", {"command": f"echo {n}"}), usage=big) for n in range(5)))
    result = make_engine(api).run(make_task(Role.CODER, max_tokens=10_000))
    assert result.stop_reason == "max_tokens"
    assert result.turns == 2


def test_budget(api: MessagesAPI, make_task: TaskFactory) -> None:
    # 60k output tokens on Sonnet cost $0.90, over a $0.50 budget after one turn.
    api.add(
        *(
            reply(tool_use("bash", {"command": f"echo {n}"}), usage={"output_tokens": 60_000})
            for n in range(3)
        )
    )
    engine = make_engine(api, max_tokens=64_000)
    result = engine.run(make_task(Role.PLANNER, budget_usd=0.5))
    assert result.stop_reason == "budget"
    assert result.turns == 1
    assert result.cost_usd == pytest.approx(cost_usd("claude-sonnet-4-6", result.usage))
    assert result.cost_usd > 0.9
    assert "budget" in result.report


def test_should_stop_ends_the_run(api: MessagesAPI, make_task: TaskFactory) -> None:
    asked: list[bool] = []
    api.add(*(reply(tool_use("bash", {"command": f"echo {n}"})) for n in range(3)))

    def stop_after_first_turn() -> bool:
        asked.append(True)
        return len(asked) > 1

    result = make_engine(api).run(make_task(Role.CODER, should_stop=stop_after_first_turn))
    assert result.turns == 1
    assert "asked it to stop" in result.report
