"""The GitHub and Gitea operations opus uses, as their owners publish them (vendored in
`github_ops.json` / `gitea_ops.json`, each naming its source document and version), and a
check of one HTTP request against them: method, path, query parameters (names, types,
enums, bounds), JSON body fields (names, types, required) and required headers.

The forge stand-in runs `check` on every request it receives, so every request any test
makes through the GitHub or Gitea forge is validated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

Flavor = Literal["github", "gitea"]
HERE = Path(__file__).parent
INTEGER_PARAMS = frozenset({"pull_number", "issue_number", "index", "id", "check_run_id", "job_id"})
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "boolean": bool, "array": list, "object": dict,
}  # fmt: skip


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    pattern: re.Pattern[str]
    query: dict[str, dict[str, Any]]
    body: dict[str, Any] | None
    response: dict[str, Any] | None = None
    """The published types of the reply fields opus reads (a 2xx reply's JSON)."""


@cache
def document(flavor: Flavor) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / f"{flavor}_ops.json").read_text())
    return data


@cache
def operations(flavor: Flavor) -> tuple[Operation, ...]:
    found = []
    for op in document(flavor)["operations"]:
        found.append(Operation(
            op["operationId"], op["method"], op["path"], _pattern(op["path"], op.get("catch_all")),
            op.get("query", {}), op.get("body"), op.get("response"),
        ))  # fmt: skip
    return tuple(found)


def _pattern(template: str, catch_all: str | None) -> re.Pattern[str]:
    def part(match: re.Match[str]) -> str:
        name = match[1]
        if name == catch_all:
            return f"(?P<{name}>.+)"
        if name in INTEGER_PARAMS:
            return f"(?P<{name}>[0-9]+)"
        return f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{(\w+)\}", part, template) + "$")


def match(flavor: Flavor, method: str, path: str) -> Operation | None:
    """The vendored operation `method path` is, or None. The most literal template wins,
    as in Gitea's router (`/pulls/{index}/reviews/{id}/comments` before the catch-all
    `/pulls/{base}/{head}`)."""
    candidates = [op for op in operations(flavor) if op.method == method and op.pattern.match(path)]
    return max(candidates, key=lambda op: len(re.sub(r"\{\w+\}", "", op.path)), default=None)


def check(
    flavor: Flavor,
    method: str,
    path: str,
    *,
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: Any,
) -> tuple[str | None, list[str]]:
    """(the operation id, the problems) of one request; `path` without any base path."""
    op = match(flavor, method, path)
    if op is None:
        return None, [f"{method} {path} is none of the published operations opus uses"]
    problems = _headers(flavor, headers)
    problems += _query(op, query)
    problems += _body(op, body)
    return op.operation_id, [f"{op.operation_id}: {problem}" for problem in problems]


def _headers(flavor: Flavor, headers: dict[str, str]) -> list[str]:
    rules = document(flavor)["headers"]
    problems = [f"header {name} missing" for name in rules["required"] if not headers.get(name)]
    for name, value in rules.get("values", {}).items():
        if headers.get(name) != value:
            problems.append(f"header {name} is {headers.get(name)!r}, not {value!r}")
    for name, prefix in rules.get("prefix", {}).items():
        if not headers.get(name, "").startswith(prefix):
            problems.append(f"header {name} does not start with {prefix!r}")
    return problems


def _query(op: Operation, query: dict[str, list[str]]) -> list[str]:
    problems = []
    for name, values in query.items():
        spec = op.query.get(name)
        if spec is None:
            problems.append(f"query parameter {name!r} is not in the operation")
            continue
        if len(values) > 1 and not spec.get("array"):
            problems.append(f"query parameter {name!r} given {len(values)} times")
        problems += [p for value in values for p in _value(name, value, spec)]
    return problems


def _value(name: str, value: str, spec: dict[str, Any]) -> list[str]:
    if spec.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]+", value):
            return [f"{name}={value!r} is not an integer"]
        number = int(value)
        if "minimum" in spec and number < spec["minimum"]:
            return [f"{name}={number} is below {spec['minimum']}"]
        if "maximum" in spec and number > spec["maximum"]:
            return [f"{name}={number} is above {spec['maximum']}"]
    if "enum" in spec and value not in spec["enum"]:
        return [f"{name}={value!r} is not one of {spec['enum']}"]
    if spec.get("format") == "date-time" and not _is_date_time(value):
        return [f"{name}={value!r} is not an RFC 3339 date-time"]
    return []


def _is_date_time(value: str) -> bool:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _body(op: Operation, body: Any) -> list[str]:
    if op.body is None:
        return [] if body is None else ["a body on an operation that takes none"]
    if not isinstance(body, dict):
        return [f"the body is not a JSON object: {body!r}"]
    properties: dict[str, dict[str, Any]] = op.body["properties"]
    problems = [f"body field {name!r} is required" for name in op.body["required"]
                if name not in body]  # fmt: skip
    for name, value in body.items():
        spec = properties.get(name)
        if spec is None:
            problems.append(f"body field {name!r} is not in the schema")
        elif not _typed(value, spec["type"]):
            problems.append(f"body field {name!r} is not a {spec['type']}")
    return problems


def check_response(flavor: Flavor, operation_id: str, payload: Any) -> list[str]:
    """The problems of a 2xx reply to `operation_id` against its published fields:
    each listed field present, of its type (`["boolean", "null"]`: nullable), in its enum."""
    op = next((op for op in operations(flavor) if op.operation_id == operation_id), None)
    if op is None or op.response is None:
        return []
    if not isinstance(payload, dict):
        return [f"{operation_id}: the reply is not a JSON object"]
    problems = []
    for name, spec in op.response["properties"].items():
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        if name not in payload:
            problems.append(f"{operation_id}: reply field {name!r} is missing")
        elif not any(_typed(payload[name], kind) for kind in kinds):
            problems.append(f"{operation_id}: reply field {name!r} is not {' or '.join(kinds)}")
        elif "enum" in spec and payload[name] not in spec["enum"]:
            problems.append(f"{operation_id}: reply field {name!r} is not one of {spec['enum']}")
    return problems


def _typed(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "integer" and isinstance(value, bool):
        return False
    return isinstance(value, JSON_TYPES[kind])
