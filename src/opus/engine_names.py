"""The engine names `agents.engine` accepts, where each is implemented, and what a job's
fork server imports ahead for it; importable without loading any engine or pydantic, so
`opus run` can start that server before its own imports (designs/lean.md)."""

from __future__ import annotations

# name → "module:class"; each class takes (agents, sandbox_cfg).
ENGINES: dict[str, str] = {
    "anthropic": "opus.engines.anthropic_engine:AnthropicEngine",
    "claude-code": "opus.engines.claude_code:ClaudeCodeEngine",
    "command": "opus.engines.command_engine:CommandEngine",
}
# name → the module the fork server imports for it, when that is more than the engine's
# own module (the anthropic one also readies the SDK's client and request path).
PRELOAD: dict[str, str] = {"anthropic": "opus.engines.anthropic_preload"}


def preload_module(engine: str) -> str | None:
    """The module a fork server imports for `engine`; None for a name that is no engine
    (the daemon's start reports it)."""
    if engine in PRELOAD:
        return PRELOAD[engine]
    target = ENGINES.get(engine)
    return None if target is None else target.split(":")[0]
