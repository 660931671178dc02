"""The `anthropic` engine reports each billed call's spend as soon as its usage is known.

The real engine on the real SDK against the Messages-API stand-in, which reports usage
as the API does: after every answered call `task.on_spend` gets the stage's totals so far
(usage and cost), before the next request goes out and before any tool runs; an error of
the spend callback (a lost lease) ends the stage at once, with no further call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opus.domain import Role, Usage
from opus.engines.pricing import cost_usd
from opus.errors import OpusError
from opus.seams import AgentTask
from tests.engines.conftest import make_engine
from tests.standins.billing import billed_usage
from tests.standins.messages_api import MessagesAPI, reply, text, tool_use

MODEL = "claude-sonnet-4-6"
TaskFactory = Callable[..., AgentTask]


def test_each_call_is_reported_with_the_totals_so_far_before_the_next(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    spent: list[tuple[Usage, float]] = []

    def answered_after(calls: int, answer: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        def respond(_body: dict[str, Any]) -> dict[str, Any]:
            # The next request goes out only once every earlier call was reported.
            assert len(spent) == calls, f"{len(spent)} calls reported before call {calls + 1}"
            return answer

        return respond

    api.add(
        reply(tool_use("bash", {"command": "echo one"}), usage={"output_tokens": 30}),
        answered_after(1, reply(tool_use("bash", {"command": "echo two"}),
                                usage={"output_tokens": 40})),
        answered_after(2, reply(text("Done."), usage={"output_tokens": 12})),
    )  # fmt: skip
    result = make_engine(api).run(make_task(Role.CODER, on_spend=lambda u, c: spent.append((u, c))))

    assert result.stop_reason == "end_turn"
    assert len(spent) == 3
    for calls, (usage, cost) in enumerate(spent, start=1):
        expected = billed_usage(api.replies[:calls])
        assert usage == expected
        assert cost == pytest.approx(cost_usd(MODEL, expected)) and cost > 0
    assert spent[-1] == (result.usage, pytest.approx(result.cost_usd))


def test_a_spend_callback_that_raises_ends_the_stage_before_its_tools_and_next_call(
    api: MessagesAPI, make_task: TaskFactory
) -> None:
    class LeaseLost(OpusError):
        pass

    def refuse(_usage: Usage, _cost_usd: float) -> None:
        raise LeaseLost("the job is no longer ours")

    api.add(
        reply(tool_use("bash", {"command": "touch ran.txt"})),
        reply(text("never asked for")),
    )  # fmt: skip
    task = make_task(Role.CODER, on_spend=refuse)
    with pytest.raises(LeaseLost):
        make_engine(api).run(task)

    assert len(api.requests) == 1
    assert not (task.worktree / "ran.txt").exists(), "the tool of the refused call ran"
