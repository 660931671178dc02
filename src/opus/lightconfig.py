"""The settings a read-only command needs, read without pydantic (`opus status`).

Importing pydantic and pydantic-settings and building `Settings` costs more than
everything else `opus status` does. `light_settings` reads the same `opus.toml` and
`OPUS_<SECTION>__<KEY>` variables with `tomllib`, checks every value against `SCHEMA` —
a snapshot of `Settings`' JSON schema that a test compares with `config.compact_schema()`,
so the two cannot drift — and returns the few values the command uses.

It accepts only what `load_settings` accepts with the same values (strict types, a
subset of pydantic's lax coercions for variables). Anything else — a value that fails
the schema, a variable it does not parse (a JSON table, a list), a file it cannot read —
gives None, and the caller loads the full settings, whose error names the problem.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opus.config import Settings

CONFIG_FILE = "opus.toml"
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLS = {"true": True, "1": True, "on": True, "yes": True,
          "false": False, "0": False, "off": False, "no": False}


@dataclass(frozen=True)
class LightSettings:
    """What `opus status` reads of the settings."""

    base_dir: Path
    config_path: Path | None
    vault_path: Path
    state_dir: Path
    database_url: str
    database_url_set: bool
    """`database.url` was given (a fresh directory with one is still a project)."""
    daily_usd: float
    poll_idle_s: float
    engine: str

    @classmethod
    def of(cls, settings: Settings) -> LightSettings:
        """The same values, from the full settings."""
        return cls(
            base_dir=settings.base_dir,
            config_path=settings.config_path,
            vault_path=settings.vault_path,
            state_dir=settings.state_dir,
            database_url=settings.database_url,
            database_url_set=settings.database.url is not None,
            daily_usd=float(settings.budget.daily_usd),
            poll_idle_s=float(settings.daemon.poll_idle_s),
            engine=settings.agents.engine,
        )


def light_settings(
    path: Path | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LightSettings | None:
    """The settings `load_settings(path, cwd=cwd)` would give, or None (then load those)."""
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()
    if path is None and (cwd / CONFIG_FILE).is_file():
        path = cwd / CONFIG_FILE
    try:
        data = _read(path) if path is not None else {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    values = _checked_file(data)
    overrides = _checked_environment(environ)
    if values is None or overrides is None:
        return None
    for (section, key), value in overrides.items():
        values.setdefault(section, {})[key] = value
    if any(values.get(section) for section in _LEFT_TO_PYDANTIC) or not _cross_checks(values):
        return None
    base_dir = path.resolve().parent if path is not None else cwd
    return _settings(values, base_dir, path)


def _read(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _checked_file(data: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    values: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        keys = SCHEMA.get(section)
        if keys is None or not isinstance(table, dict):
            return None
        for key, value in table.items():
            if key not in keys or not _valid(value, keys[key]):
                return None
        values[section] = dict(table)
    return values


def _checked_environment(environ: Mapping[str, str]) -> dict[tuple[str, str], Any] | None:
    """`OPUS_<SECTION>__<KEY>` values; None when a variable needs the full settings."""
    found: dict[tuple[str, str], Any] = {}
    for name, text in environ.items():
        upper = name.upper()
        if not upper.startswith("OPUS_"):
            continue
        rest = upper[5:].lower()
        if "__" not in rest:
            if rest in SCHEMA or rest in ("base_dir", "config_path"):
                return None  # a whole table as JSON, or a field of its own
            continue  # not a setting (e.g. OPUS_DASHBOARD_TOKEN)
        section, key = rest.split("__", 1)
        spec = SCHEMA.get(section, {}).get(key)
        value = None if spec is None else _from_text(text, spec)
        if value is None:
            return None
        found[(section, key)] = value
    return found


def _from_text(text: str, spec: Mapping[str, Any]) -> Any:
    """A variable's value as the schema's scalar type, or None (not one we parse)."""
    kinds = spec.get("anyOf", [spec])
    scalars = [k for k in kinds if k.get("type") in ("string", "integer", "number", "boolean")]
    if len(scalars) != 1 or not text.strip():
        return None
    kind = scalars[0]["type"]
    value: Any = text
    if kind == "integer":
        value = int(text) if _INT.fullmatch(text) else None
    elif kind == "number":
        value = float(text) if _FLOAT.fullmatch(text) else None
    elif kind == "boolean":
        value = _BOOLS.get(text.lower())
    return value if value is not None and _valid(value, scalars[0]) else None


def _valid(value: Any, spec: Mapping[str, Any]) -> bool:
    if "anyOf" in spec:
        return any(_valid(value, option) for option in spec["anyOf"])
    kind = spec.get("type")
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }.get(str(kind), False)
    if not ok:
        return False
    if "enum" in spec and value not in spec["enum"]:
        return False
    if kind in ("integer", "number") and not _in_range(value, spec):
        return False
    if kind == "array":
        return all(_valid(item, spec.get("items", {})) for item in value)
    if kind == "object":
        inner = spec.get("additionalProperties")
        return isinstance(inner, dict) and all(
            isinstance(k, str) and _valid(v, inner) for k, v in value.items())
    return True


def _in_range(value: float, spec: Mapping[str, Any]) -> bool:
    return not (
        ("minimum" in spec and value < spec["minimum"])
        or ("maximum" in spec and value > spec["maximum"])
        or ("exclusiveMinimum" in spec and value <= spec["exclusiveMinimum"])
        or ("exclusiveMaximum" in spec and value >= spec["exclusiveMaximum"])
    )


def _cross_checks(values: Mapping[str, Mapping[str, Any]]) -> bool:
    """The validators of `REDONE`, done here."""
    daemon = values.get("daemon", {})
    heartbeat = daemon.get("heartbeat_s", SCHEMA["daemon"]["heartbeat_s"]["default"])
    lease = daemon.get("lease_s", SCHEMA["daemon"]["lease_s"]["default"])
    if heartbeat * 2 > lease:
        return False
    pattern = values.get("vault", {}).get("id_pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error:
            return False
    return True


def _settings(values: Mapping[str, Mapping[str, Any]], base_dir: Path,
              config_path: Path | None) -> LightSettings:
    def get(section: str, key: str) -> Any:
        return values.get(section, {}).get(key, SCHEMA[section][key].get("default"))

    def resolve(text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (base_dir / path).resolve()

    state_dir = resolve(get("daemon", "state_dir"))
    url = get("database", "url")
    return LightSettings(
        base_dir=base_dir,
        config_path=config_path,
        vault_path=resolve(get("vault", "path")),
        state_dir=state_dir,
        database_url=url or f"sqlite:///{state_dir / 'opus.db'}",
        database_url_set=url is not None,
        daily_usd=float(get("budget", "daily_usd")),
        poll_idle_s=float(get("daemon", "poll_idle_s")),
        engine=str(get("agents", "engine")),
    )


# Each section's validators (`opus.config.section_validators()`, compared by a test): a
# section whose validators are not all redone here (`_cross_checks`) is read by pydantic
# whenever it sets a key, so a new validator cannot be skipped by `opus status`.
VALIDATED: dict[str, list[str]] = {
    "vault": ["_id_pattern_compiles"],
    "daemon": ["_heartbeat_renews_in_time"],
    "pipeline": ["_approve_plan_priorities"],
    "dashboard": ["_listen_is_host_port"],
}
REDONE = {"vault": ["_id_pattern_compiles"], "daemon": ["_heartbeat_renews_in_time"]}
_LEFT_TO_PYDANTIC = [section for section, checks in VALIDATED.items()
                     if checks != REDONE.get(section)]

# Generated by `opus.config.compact_schema()`; tests/e2e_cli/test_light_config.py fails
# when the two differ, and prints the new value.
SCHEMA: dict[str, dict[str, dict[str, Any]]] = (
    {'vault': {'path': {'default': 'vault', 'type': 'string'},
               'move_notes': {'default': True, 'type': 'boolean'},
               'features_dir': {'default': '10_features', 'type': 'string'},
               'id_pattern': {'default': '[A-Z][A-Z0-9]*-\\d+', 'type': 'string'},
               'settle_s': {'default': 2, 'minimum': 0, 'type': 'number'}},
     'daemon': {'state_dir': {'default': '.opus', 'type': 'string'},
                'max_concurrent': {'default': 3,
                                   'maximum': 64,
                                   'minimum': 1,
                                   'type': 'integer'},
                'poll_active_s': {'default': 30, 'exclusiveMinimum': 0, 'type': 'number'},
                'poll_idle_s': {'default': 300, 'exclusiveMinimum': 0, 'type': 'number'},
                'lease_s': {'default': 120, 'exclusiveMinimum': 0, 'type': 'number'},
                'heartbeat_s': {'default': 20, 'exclusiveMinimum': 0, 'type': 'number'},
                'breaker_failures': {'default': 3, 'minimum': 1, 'type': 'integer'},
                'breaker_cooldown_s': {'default': 600, 'exclusiveMinimum': 0, 'type': 'number'},
                'stop_grace_s': {'default': 10, 'exclusiveMinimum': 0, 'type': 'number'}},
     'database': {'url': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None}},
     'pipeline': {'max_iterations': {'default': 3,
                                     'maximum': 20,
                                     'minimum': 1,
                                     'type': 'integer'},
                  'stage_timeout_s': {'default': 1800, 'exclusiveMinimum': 0, 'type': 'number'},
                  'stage_idle_s': {'default': 600, 'exclusiveMinimum': 0, 'type': 'number'},
                  'max_turns': {'default': 60, 'minimum': 1, 'type': 'integer'},
                  'max_stage_tokens': {'default': 2000000, 'minimum': 1000, 'type': 'integer'},
                  'test_timeout_s': {'default': 900, 'exclusiveMinimum': 0, 'type': 'number'},
                  'output_tail_bytes': {'default': 16000, 'minimum': 1000, 'type': 'integer'},
                  'baseline': {'default': 'fail',
                               'enum': ['fail', 'warn', 'skip'],
                               'type': 'string'},
                  'open_questions': {'default': 'ask',
                                     'enum': ['ask', 'recommend', 'ignore'],
                                     'type': 'string'},
                  'question_headings': {'items': {'type': 'string'}, 'type': 'array'},
                  'decision_headings': {'items': {'type': 'string'}, 'type': 'array'},
                  'approve_plan': {'anyOf': [{'enum': ['never', 'always'], 'type': 'string'},
                                             {'items': {'type': 'string'}, 'type': 'array'}],
                                   'default': 'never'}},
     'agents': {'engine': {'default': 'anthropic',
                           'enum': ['anthropic', 'claude-code', 'command'],
                           'type': 'string'},
                'model': {'default': 'claude-sonnet-4-6', 'type': 'string'},
                'planner_model': {'anyOf': [{'type': 'string'}, {'type': 'null'}],
                                  'default': None},
                'coder_model': {'anyOf': [{'type': 'string'}, {'type': 'null'}],
                                'default': None},
                'reviewer_model': {'anyOf': [{'type': 'string'}, {'type': 'null'}],
                                   'default': None},
                'max_tokens': {'default': 8192, 'minimum': 256, 'type': 'integer'},
                'max_retries': {'default': 4, 'minimum': 0, 'type': 'integer'},
                'command': {'items': {'type': 'string'}, 'type': 'array'},
                'claude_bin': {'default': 'claude', 'type': 'string'},
                'prices': {'additionalProperties': {'additionalProperties': {'type': 'number'},
                                                    'type': 'object'},
                           'type': 'object'},
                'coder_can_ask': {'default': False, 'type': 'boolean'}},
     'sandbox': {'kind': {'default': 'bwrap', 'enum': ['bwrap', 'none'], 'type': 'string'},
                 'network': {'default': False, 'type': 'boolean'},
                 'command_timeout_s': {'default': 600, 'exclusiveMinimum': 0, 'type': 'number'},
                 'output_cap_bytes': {'default': 200000, 'minimum': 1000, 'type': 'integer'},
                 'setup_network': {'default': True, 'type': 'boolean'},
                 'max_processes': {'default': 512, 'minimum': 16, 'type': 'integer'},
                 'max_memory_mb': {'default': 4096, 'minimum': 64, 'type': 'integer'},
                 'max_file_mb': {'default': 1024, 'minimum': 1, 'type': 'integer'},
                 'max_cpu_s': {'default': 1800, 'minimum': 1, 'type': 'integer'},
                 'max_worktree_mb': {'default': 20480, 'minimum': 1, 'type': 'integer'},
                 'pass_env': {'items': {'type': 'string'}, 'type': 'array'}},
     'git': {'default_repo': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None},
             'remote': {'default': 'origin', 'type': 'string'},
             'branch_prefix': {'default': 'opus/', 'type': 'string'},
             'protected': {'items': {'type': 'string'}, 'type': 'array'},
             'author_name': {'default': 'opus', 'type': 'string'},
             'author_email': {'default': 'opus@localhost', 'type': 'string'}},
     'pr': {'provider': {'default': 'local',
                         'enum': ['local', 'github', 'gitea'],
                         'type': 'string'},
            'api_url': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None},
            'token_env': {'default': 'GITHUB_TOKEN', 'type': 'string'},
            'repository': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None},
            'poll_s': {'default': 120, 'exclusiveMinimum': 0, 'type': 'number'},
            'ci': {'default': 'react', 'enum': ['react', 'wait', 'ignore'], 'type': 'string'},
            'ci_rounds': {'default': 2, 'minimum': 0, 'type': 'integer'},
            'optional_checks': {'items': {'type': 'string'}, 'type': 'array'},
            'ci_timeout_s': {'default': 3600, 'exclusiveMinimum': 0, 'type': 'number'},
            'update_branch': {'default': 'never',
                              'enum': ['never', 'when-behind'],
                              'type': 'string'}},
     'notify': {'urls': {'items': {'type': 'string'}, 'type': 'array'},
                'remind_after_h': {'default': 24, 'exclusiveMinimum': 0, 'type': 'number'}},
     'budget': {'job_usd': {'default': 5, 'minimum': 0, 'type': 'number'},
                'daily_usd': {'default': 50, 'minimum': 0, 'type': 'number'}},
     'dashboard': {'listen': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None},
                   'token_env': {'default': 'OPUS_DASHBOARD_TOKEN', 'type': 'string'}}}
)
