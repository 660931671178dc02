"""The one YAML dialect opus reads and writes notes in.

Every read of a note's frontmatter, every round-trip check of a write-back and every
note opus writes (the `local` forge's PR notes) go through this module, so what parses
in one place parses in all of them (libyaml when available: a tab before `# comment`,
which the pure-Python scanner rejects, is accepted everywhere).

The implicit types are YAML 1.2's core schema, not PyYAML's 1.1 defaults: `yes`/`on`
stay text, `0042` stays `0042` (not octal 34), `2024-01-02` stays text (not a date).
And opus's own keys are read as the text written, whatever it looks like: `id: 1.50`
is the id `1.50`, not the number 1.5.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TEXT_KEYS = frozenset({
    "id", "title", "status", "priority", "repo", "base", "test_command",
    "job", "stage", "branch", "pr", "updated", "error", "open_questions",
})  # fmt: skip
"""Top-level keys read as the text written (a plain scalar never becomes a number)."""

_STR = "tag:yaml.org,2002:str"
_IMPLICIT = frozenset(f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float"))
_NULL_TEXT = frozenset({"", "~", "null", "Null", "NULL"})


class NoteLoader(_BASE):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2 core implicit types (see the module docstring)."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


def _resolver(tag: str, pattern: str, first: str) -> None:
    NoteLoader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))


_resolver("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789")
_resolver(
    "float",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+.0123456789",
)
_resolver("null", r"^(?:~|null|Null|NULL|)$", "~nN")
NoteLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


class NoteDumper(yaml.SafeDumper):
    """Quotes exactly the strings `NoteLoader` would otherwise read as another type."""

    yaml_implicit_resolvers = NoteLoader.yaml_implicit_resolvers


def load_yaml(text: str) -> Any:
    """Parse one YAML document in opus's dialect; raises `yaml.YAMLError`."""
    loader = NoteLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _text_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _text_keys(node: yaml.Node) -> None:
    """Read opus's keys as written: retag their plain scalar values as strings."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        if not (isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)):
            continue
        plain = not value.style  # libyaml says "", PyYAML None
        typed = value.tag in _IMPLICIT  # an explicit tag (`!!python/...`) stays what it is
        if key.value in TEXT_KEYS and plain and typed and value.value not in _NULL_TEXT:
            value.tag = _STR


def dump_scalar(text: str, *, key: str = "title") -> str:
    """`text` as a one-line YAML scalar that `load_yaml` reads back as `text` under `key`.

    Plain when that reads back the same (so hand-written style survives), else
    double-quoted with escapes; non-ASCII stays readable (no `\\uXXXX`).
    """
    if _plain_ok(text, key):
        return text
    dumped = yaml.dump(
        text, Dumper=NoteDumper, default_style='"', width=math.inf, allow_unicode=True
    )
    return str(dumped).removesuffix("\n").removesuffix("...").rstrip("\n")


def _plain_ok(text: str, key: str) -> bool:
    if not text or text != text.strip() or any(ch in text for ch in "\r\n\x85\u2028\u2029"):
        return False
    try:
        return bool(load_yaml(f"{key}: {text}") == {key: text})
    except yaml.YAMLError:
        return False


def dump_mapping(mapping: dict[str, Any]) -> str:
    """A mapping as block YAML, keys in the given order, Unicode kept as written."""
    return str(
        yaml.dump(
            mapping,
            Dumper=NoteDumper,
            sort_keys=False,
            allow_unicode=True,
            width=math.inf,
            default_flow_style=False,
        )
    )
