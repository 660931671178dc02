"""The tool versions each model accepts, and models opus cannot give its tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opus.config import AgentsConfig
from opus.domain import Role
from opus.engines import engine_at_first_use
from opus.engines.anthropic_engine import AnthropicEngine
from opus.engines.models import max_output_tokens, tools_for
from opus.errors import ConfigError
from opus.seams import AgentTask
from tests.e2e_cli.helpers import clean_env, run_opus
from tests.engines.conftest import SANDBOX_CFG, make_engine
from tests.standins.messages_api import MessagesAPI, last_tool_results, reply, text, tool_use

TaskFactory = Callable[..., AgentTask]


def test_sonnet_37_gets_the_older_editor_and_can_use_it(
    api: MessagesAPI, make_task: TaskFactory, repo: Path
) -> None:
    api.add(
        reply(tool_use("str_replace_editor", {"command": "view", "path": "src/calc.py"})),
        reply(
            tool_use(
                "str_replace_editor",
                {"command": "insert", "path": "src/calc.py", "insert_line": 2, "new_str": "# end"},
            )
        ),
        reply(text("Done.")),
    )
    task = make_task(Role.CODER, model="claude-3-7-sonnet-20250219")
    result = make_engine(api, model="claude-3-7-sonnet-20250219").run(task)
    assert result.output == {"summary": "Done."}
    tools = api.bodies[0]["tools"]
    assert [(t["type"], t["name"]) for t in tools] == [
        ("text_editor_20250124", "str_replace_editor"),
        ("bash_20250124", "bash"),
    ]
    assert "return a + b" in last_tool_results(api.bodies[1])[0]["content"]
    assert (repo / "src/calc.py").read_text() == "def add(a, b):\n    return a + b\n# end\n"


def test_current_models_get_the_current_tools() -> None:
    for model in ("claude-sonnet-4-6", "claude-opus-4-1-20250805", "claude-haiku-4-5", "claude-x"):
        assert tools_for(model).editor_type == "text_editor_20250728", model
    assert max_output_tokens("claude-opus-4-6") == 128_000
    assert max_output_tokens("claude-sonnet-4-5-20250929") == 64_000


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"model": "claude-3-5-haiku-20241022"}, "agents.model"),
        ({"coder_model": "claude-3-5-haiku-latest"}, "agents.coder_model"),
        ({"reviewer_model": "claude-3-opus-20240229"}, "agents.reviewer_model"),
    ],
)
def test_a_model_without_the_tools_is_refused_at_start(settings: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"config key `{key}`: model claude-3") as caught:
        AnthropicEngine(AgentsConfig(**settings), SANDBOX_CFG)
    assert "claude-sonnet-4-6" in str(caught.value)
    # The daemon builds the engine lazily, but checks the models when it starts.
    with pytest.raises(ConfigError, match=f"config key `{key}`"):
        engine_at_first_use(AgentsConfig(**settings), SANDBOX_CFG)


def test_doctor_fails_the_engine_check_for_such_a_model(tmp_path: Path) -> None:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    env = clean_env(
        tmp_path,
        {"ANTHROPIC_API_KEY": "sk-test", "OPUS_AGENTS__CODER_MODEL": "claude-3-5-haiku-20241022"},
    )
    result = run_opus("doctor", cwd=tmp_path / "p", env=env)
    assert result.code == 1
    engine = next(line for line in result.out.splitlines() if "] engine" in line)
    assert engine.startswith("[FAIL]") and "agents.coder_model" in engine, engine
