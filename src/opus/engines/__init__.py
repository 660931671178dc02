"""Agent engines: who runs the planner, coder and reviewer roles.

`engine_for` picks one by the `agents.engine` name; each is imported only when chosen,
so the `anthropic` SDK is not loaded for a `command` setup and vice versa.
"""

from __future__ import annotations

import importlib

from opus.config import AgentsConfig, SandboxConfig
from opus.errors import ConfigError
from opus.seams import Engine

# name → "module:class"; each class takes (agents, sandbox_cfg).
ENGINES: dict[str, str] = {
    "anthropic": "opus.engines.anthropic_engine:AnthropicEngine",
    "claude-code": "opus.engines.claude_code:ClaudeCodeEngine",
    "command": "opus.engines.command_engine:CommandEngine",
}


def engine_for(agents: AgentsConfig, sandbox_cfg: SandboxConfig) -> Engine:
    """The engine named by `agents.engine`; `ConfigError` lists the valid names."""
    target = ENGINES.get(agents.engine)
    if target is None:
        raise ConfigError(
            f"config key `agents.engine`: unknown engine {agents.engine!r}; "
            f"use one of {', '.join(sorted(ENGINES))}"
        )
    module_name, class_name = target.split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    engine: Engine = engine_class(agents, sandbox_cfg)
    return engine
