"""Agent engines: who runs the planner, coder and reviewer roles.

`engine_for` picks one by the `agents.engine` name; each is imported only when chosen,
so the `anthropic` SDK is not loaded for a `command` setup and vice versa.
"""

from __future__ import annotations

import importlib
import threading

from opus.config import AgentsConfig, SandboxConfig
from opus.engine_names import ENGINES
from opus.engines.models import check_models
from opus.errors import ConfigError
from opus.seams import AgentResult, AgentTask, Engine

# Engines whose module is only imported when the first stage runs: the `anthropic` SDK
# costs ~1.2 s and ~80 MB, which a daemon that is starting (or idle) has no use for.
LOADED_AT_FIRST_USE = frozenset({"anthropic"})


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


def engine_at_first_use(agents: AgentsConfig, sandbox_cfg: SandboxConfig) -> Engine:
    """`engine_for`, except that an engine in `LOADED_AT_FIRST_USE` is only imported and
    made when its first stage runs (the name is still checked now)."""
    if agents.engine not in LOADED_AT_FIRST_USE:
        return engine_for(agents, sandbox_cfg)
    # A model without opus's tools is a config error at start, not at the first stage
    # (this check needs no SDK).
    check_models(agents)
    return _AtFirstUse(agents, sandbox_cfg)


class _AtFirstUse:
    """Implements `Engine`: builds the named engine on the first `run` (thread-safe)."""

    def __init__(self, agents: AgentsConfig, sandbox_cfg: SandboxConfig) -> None:
        self._agents = agents
        self._sandbox_cfg = sandbox_cfg
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "loaded" if self._engine is not None else "not loaded yet"
        return f"engine {self._agents.engine!r} ({state})"

    def run(self, task: AgentTask) -> AgentResult:
        with self._lock:
            if self._engine is None:
                self._engine = engine_for(self._agents, self._sandbox_cfg)
        return self._engine.run(task)
