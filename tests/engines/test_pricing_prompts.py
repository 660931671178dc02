"""Pricing, engine selection, role prompts and first user messages."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role, Usage
from opus.engines import ENGINES, engine_for
from opus.engines.pricing import MOST_EXPENSIVE, cost_usd, prices_for
from opus.errors import ConfigError
from opus.prompts import OVERRIDE_DIR, load_prompt, messages

PLAN = {"summary": "Add sub().", "steps": [{"title": "Write sub", "postcondition": "tests pass"}]}


def test_cost_of_known_models() -> None:
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_tokens=1_000_000,
    )
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(3 + 15 + 0.30 + 3.75)
    assert cost_usd("claude-sonnet-4-5-20250929", usage) == cost_usd("claude-sonnet-4-5", usage)
    assert cost_usd("claude-haiku-4-5", Usage(output_tokens=2_000_000)) == pytest.approx(10)


def test_unknown_model_is_charged_the_most_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert prices_for("claude-unknown-9") == MOST_EXPENSIVE
        assert prices_for("claude-unknown-9") == MOST_EXPENSIVE
    warnings = [r for r in caplog.records if "claude-unknown-9" in r.getMessage()]
    assert len(warnings) == 1
    assert cost_usd("claude-unknown-9", Usage(input_tokens=10)) > 0


def test_price_overrides() -> None:
    prices = {"my-model": {"input": 1, "output": 2, "cache_read": 0.1, "cache_write": 1.25}}
    assert cost_usd("my-model", Usage(output_tokens=1_000_000), prices) == pytest.approx(2)
    with pytest.raises(ConfigError, match=r"agents\.prices\.my-model.*cache_write"):
        prices_for("my-model", {"my-model": {"input": 1, "output": 2, "cache_read": 0.1}})


def test_engine_for_by_name(tmp_path: Path) -> None:
    engine = engine_for(AgentsConfig(engine="anthropic"), SandboxConfig())
    assert type(engine).__name__ == "AnthropicEngine"
    claude = engine_for(AgentsConfig(engine="claude-code"), SandboxConfig())
    assert type(claude).__name__ == "ClaudeCodeEngine"
    command = engine_for(AgentsConfig(engine="command", command=["true"]), SandboxConfig())
    assert type(command).__name__ == "CommandEngine"
    with pytest.raises(ConfigError, match=r"agents\.command"):
        engine_for(AgentsConfig(engine="command"), SandboxConfig())
    bogus = AgentsConfig.model_construct(engine="gpt-engine")
    with pytest.raises(ConfigError) as caught:
        engine_for(bogus, SandboxConfig())
    assert all(name in str(caught.value) for name in ENGINES)


def test_shipped_prompts() -> None:
    for role in Role:
        prompt = load_prompt(role, None)
        assert prompt.source.name == f"{role.value}.md"
        assert prompt.sha256 == hashlib.sha256(prompt.source.read_bytes()).hexdigest()
    assert "submit_plan" in load_prompt(Role.PLANNER, None).text
    assert ".git" in load_prompt(Role.CODER, None).text
    assert "submit_review" in load_prompt(Role.REVIEWER, None).text


def test_vault_override(tmp_path: Path) -> None:
    folder = tmp_path / OVERRIDE_DIR
    folder.mkdir(parents=True)
    text = "Plan carefully. Ünïcode too.\n"
    (folder / "planner.md").write_text(text, encoding="utf-8")
    prompt = load_prompt(Role.PLANNER, tmp_path)
    assert prompt.text == text
    assert prompt.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert prompt.source == folder / "planner.md"
    assert load_prompt(Role.CODER, tmp_path).source.parent != folder, "no override: shipped"
    (folder / "reviewer.md").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_prompt(Role.REVIEWER, tmp_path)
    (folder / "coder.md").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_prompt(Role.CODER, tmp_path)


def test_every_first_message_carries_the_fr() -> None:
    body = "Add sub(a, b) to calc."
    planner = messages.planner_message("FR-7", "Subtraction", body)
    coder = messages.coder_message("FR-7", "Subtraction", body, plan=PLAN)
    reviewer = messages.reviewer_message(
        "FR-7", "Subtraction", body, plan=PLAN, diff="+def sub", test_summary="exit 0: 3 passed"
    )
    for message in (planner, coder, reviewer):
        assert "FR-7" in message and "Subtraction" in message and body in message
    assert "Write sub" in coder and "tests pass" in coder
    assert "+def sub" in reviewer and "3 passed" in reviewer and "Write sub" in reviewer
    assert "Round" not in coder


def test_coder_message_on_later_rounds_carries_the_feedback() -> None:
    coder = messages.coder_message(
        "FR-7", "Subtraction", "body", plan=PLAN, iteration=2, feedback="FAILED test_sub"
    )
    assert "Round 2" in coder and "FAILED test_sub" in coder


def test_huge_diff_is_cut() -> None:
    diff = "+x\n" * 50_000
    reviewer = messages.reviewer_message("FR-1", "t", "b", plan=None, diff=diff, test_summary="")
    assert len(reviewer) < len(diff) and "git diff" in reviewer
