"""What each Claude model accepts: the versions of the Anthropic-defined tools, output size.

The text editor and bash tools are versioned, and a model accepts only the versions it
was trained with (the API answers 400 "'<model>' does not support tool types: ..."
otherwise). From Anthropic's tool documentation (text editor tool, "Model compatibility";
bash tool, "Tool versions"):

| models                | editor `type`, `name`                                 | bash            |
| --------------------- | ----------------------------------------------------- | --------------- |
| Claude 4.x and later  | `text_editor_20250728`, `str_replace_based_edit_tool` | `bash_20250124` |
| Claude Sonnet 3.7     | `text_editor_20250124`, `str_replace_editor`          | `bash_20250124` |
| Claude Haiku 3.5, 3.x | none                                                  | none            |

A model opus cannot give its tools is refused when the engine is built, naming the key.
Model ids not listed here (newer models) get the current versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opus.config import AgentsConfig
from opus.errors import ConfigError

ROLES = ("planner", "coder", "reviewer")


@dataclass(frozen=True)
class ToolVersions:
    """The `type` and `name` of the Anthropic-defined tools one model accepts."""

    editor_type: str
    editor_name: str
    bash_type: str
    bash_name: str = "bash"


CURRENT_TOOLS = ToolVersions("text_editor_20250728", "str_replace_based_edit_tool", "bash_20250124")
SONNET_37_TOOLS = ToolVersions("text_editor_20250124", "str_replace_editor", "bash_20250124")

# Base model names (no date suffix) → their tools; None: the model has no editor/bash tool.
_OLDER_MODELS: dict[str, ToolVersions | None] = {
    "claude-3-7-sonnet": SONNET_37_TOOLS,
    "claude-3-5-haiku": None,
    "claude-3-5-sonnet": None,  # retired; its tool versions needed a beta header
    "claude-3-haiku": None,
    "claude-3-opus": None,
    "claude-3-sonnet": None,
}

# The largest `max_tokens` a model accepts (models overview, "Max output"); opus raises a
# call's max_tokens up to this when a tool call was cut off.
_MAX_OUTPUT: dict[str, int] = {
    "claude-opus-4-6": 128_000,
    "claude-opus-4-5": 64_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4-0": 32_000,
    "claude-opus-4": 32_000,
    "claude-sonnet-4-6": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-sonnet-4-0": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-3-7-sonnet": 64_000,
}
# For a model not in the table: every current model accepts at least this much.
DEFAULT_MAX_OUTPUT = 32_000

# The newest model of each family (models overview): what opus suggests in place of a
# model that is deprecated or gone.
CURRENT_MODELS: dict[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
}
MODELS_OVERVIEW = "https://docs.claude.com/en/docs/about-claude/models/overview"

_SUFFIX = re.compile(r"-(\d{8}|latest)$")


def base_model(model: str) -> str:
    """`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`; `-latest` aliases likewise."""
    return _SUFFIX.sub("", model)


def tools_for(model: str) -> ToolVersions:
    """The tool versions `model` accepts; `ConfigError` when it has no editor/bash tool."""
    base = base_model(model)
    if base not in _OLDER_MODELS:
        return CURRENT_TOOLS
    tools = _OLDER_MODELS[base]
    if tools is None:
        raise ConfigError(
            f"model {model} cannot run opus's agents: Anthropic offers it neither the text "
            "editor tool nor the bash tool; use a Claude 4 model such as claude-sonnet-4-6"
        )
    return tools


def max_output_tokens(model: str) -> int:
    """The largest max_tokens `model` accepts (a safe default for unknown models)."""
    return _MAX_OUTPUT.get(base_model(model), DEFAULT_MAX_OUTPUT)


def model_key(agents: AgentsConfig, role: str) -> str:
    """The config key that chose `role`'s model: its own key when set, else `agents.model`."""
    return f"agents.{role}_model" if getattr(agents, f"{role}_model", None) else "agents.model"


def instead_of(model: str) -> str:
    """What to use instead of `model`: the current model of its family (opus, sonnet,
    haiku), or the models overview when opus knows nothing newer."""
    base = base_model(model)
    family = next((f for f in CURRENT_MODELS if f in base), "sonnet")
    current = CURRENT_MODELS[family]
    if current == base:
        return f"a newer model (see {MODELS_OVERVIEW})"
    return f"a current model such as {current}"


def check_models(agents: AgentsConfig) -> None:
    """`ConfigError` naming the key when a role's model cannot get opus's tools."""
    for role in ROLES:
        model = agents.model_for(role)
        try:
            tools_for(model)
        except ConfigError as exc:
            raise ConfigError(f"config key `{model_key(agents, role)}`: {exc}") from exc
