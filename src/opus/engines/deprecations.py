"""Models the installed `anthropic` SDK lists as deprecated, named by the key that chose them.

Anthropic retires models on announced dates; after that the API answers 404 and every job
on such a model fails. The SDK carries the table (model id → end-of-life date, as text:
`anthropic._data.DEPRECATED_MODELS`, private, in SDK 2.14) and warns at each request with
a `DeprecationWarning` that Python hides by default. opus reads the same table to say it
where an operator looks, naming the config key to change: in `opus doctor` (the engine
check warns) and once in a job's log when its engine is built.

The table is private: when it is missing or renamed there is simply no check. Reading it
imports the SDK, so nothing on the path of `opus status` or of the daemon before READY
calls this (designs/lean.md); a job process has the SDK loaded already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opus.config import AgentsConfig
from opus.engines.models import ROLES, base_model, instead_of, model_key


@dataclass(frozen=True)
class Deprecated:
    """One configured model the SDK lists as deprecated."""

    key: str
    """The config key that chose it (`agents.model` or `agents.<role>_model`)."""
    model: str
    end_of_life: str
    """The date as the SDK writes it (e.g. "November 30th, 2026")."""

    def __str__(self) -> str:
        return (
            f"config key `{self.key}`: model {self.model} is deprecated and reaches its "
            f"end of life on {self.end_of_life} (the installed anthropic SDK says so); "
            f"after that the API answers 404 and jobs on it fail; switch to "
            f"{instead_of(self.model)}"
        )


def end_of_life_table() -> Mapping[str, str]:
    """The SDK's model → end-of-life table; empty when this SDK has none (or moved it)."""
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:
        return {}
    return DEPRECATED_MODELS if isinstance(DEPRECATED_MODELS, Mapping) else {}


def deprecated_models(
    agents: AgentsConfig, table: Mapping[str, str] | None = None
) -> list[Deprecated]:
    """Each (key, model) of the roles' models that `table` (default: the SDK's) lists,
    once each, in role order."""
    table = end_of_life_table() if table is None else table
    found: dict[tuple[str, str], Deprecated] = {}
    for role in ROLES:
        model = agents.model_for(role)
        end = table.get(model) or table.get(base_model(model))
        if end:
            key = model_key(agents, role)
            found.setdefault((key, model), Deprecated(key, model, str(end)))
    return list(found.values())
