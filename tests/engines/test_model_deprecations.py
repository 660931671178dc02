"""Models the installed SDK lists as deprecated: warned of once, naming the key that chose
them, by the engine (for the job's log) and by `opus doctor`."""

from __future__ import annotations

from pathlib import Path

import anthropic._data
import pytest

from opus.config import AgentsConfig
from opus.engines.anthropic_engine import AnthropicEngine
from tests.e2e_cli.helpers import clean_env, run_opus
from tests.engines.conftest import SANDBOX_CFG

SONNET_45 = "claude-sonnet-4-5-20250929"
OPUS_45 = "claude-opus-4-5"


def _end_of_life(model: str) -> str:
    date: str = anthropic._data.DEPRECATED_MODELS[model]
    return date


def test_a_deprecated_model_is_named_once_with_its_key_and_end_of_life() -> None:
    engine = AnthropicEngine(AgentsConfig(model=SONNET_45), SANDBOX_CFG)
    # Three roles use agents.model: one notice, not three.
    assert engine.notices() == [
        f"config key `agents.model`: model {SONNET_45} is deprecated and reaches its end of "
        f"life on {_end_of_life(SONNET_45)} (the installed anthropic SDK says so); after "
        "that the API answers 404 and jobs on it fail; switch to a current model such as "
        "claude-sonnet-4-6"
    ]


def test_each_role_key_is_named_with_a_model_of_its_family() -> None:
    agents = AgentsConfig(reviewer_model=OPUS_45, coder_model=SONNET_45)
    notices = AnthropicEngine(agents, SANDBOX_CFG).notices()
    assert len(notices) == 2, notices
    assert notices[0].startswith(f"config key `agents.coder_model`: model {SONNET_45} ")
    assert notices[1].startswith(f"config key `agents.reviewer_model`: model {OPUS_45} ")
    assert _end_of_life(OPUS_45) in notices[1] and "such as claude-opus-4-6" in notices[1]


def test_current_models_have_no_notice() -> None:
    assert AnthropicEngine(AgentsConfig(), SANDBOX_CFG).notices() == []


def test_an_sdk_without_the_table_means_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(anthropic._data, "DEPRECATED_MODELS")
    assert AnthropicEngine(AgentsConfig(model=SONNET_45), SANDBOX_CFG).notices() == []


def test_doctor_warns_of_a_deprecated_model_naming_the_key(tmp_path: Path) -> None:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    env = clean_env(
        tmp_path, {"ANTHROPIC_API_KEY": "sk-test", "OPUS_AGENTS__PLANNER_MODEL": SONNET_45}
    )
    result = run_opus("doctor", cwd=tmp_path / "p", env=env)
    engine = next(line for line in result.out.splitlines() if "] engine" in line)
    assert engine.startswith("[WARN]"), engine
    assert "anthropic, key present" in engine
    assert f"config key `agents.planner_model`: model {SONNET_45} is deprecated" in engine
    assert _end_of_life(SONNET_45) in engine
    assert result.code == 0, result.out  # a warning; nothing fails yet
