"""What the real Messages API rejects, and the usage it reports: the stand-in's rules.

Each check returns the API's own error (status, type and message wording as the API sends
them; the sources are named in designs/engines.md) or None. The model table gives what
differs per model: the Anthropic-defined tool versions it accepts, its largest
`max_tokens`, and its minimum cacheable prompt length.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The fixed `name` each Anthropic-defined tool type must be given.
TOOL_NAMES = {
    "bash_20250124": "bash",
    "text_editor_20250124": "str_replace_editor",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "computer_20250124": "computer",
    "web_search_20250305": "web_search",
}
# Input tokens the API adds for an Anthropic-defined tool's built-in definition.
TOOL_OVERHEAD = {"bash_20250124": 245, "text_editor_20250124": 700, "text_editor_20250728": 700}
_CLAUDE_4 = frozenset({"bash_20250124", "computer_20250124", "web_search_20250305"})
_EDITOR_4 = frozenset({"text_editor_20250728"})
_BOTH_EDITORS_4 = frozenset({"text_editor_20250429", "text_editor_20250728"})


@dataclass(frozen=True)
class Model:
    tool_types: frozenset[str]
    max_output: int
    min_cache_tokens: int


MODELS: dict[str, Model] = {
    "claude-opus-4-6": Model(_CLAUDE_4 | _EDITOR_4, 128_000, 4096),
    "claude-opus-4-5": Model(_CLAUDE_4 | _EDITOR_4, 64_000, 4096),
    "claude-opus-4-1": Model(_CLAUDE_4 | _BOTH_EDITORS_4, 32_000, 1024),
    "claude-opus-4-0": Model(_CLAUDE_4 | _BOTH_EDITORS_4, 32_000, 1024),
    "claude-sonnet-4-6": Model(_CLAUDE_4 | _EDITOR_4, 64_000, 2048),
    "claude-sonnet-4-5": Model(_CLAUDE_4 | _EDITOR_4, 64_000, 1024),
    "claude-sonnet-4-0": Model(_CLAUDE_4 | _BOTH_EDITORS_4, 64_000, 1024),
    "claude-haiku-4-5": Model(_CLAUDE_4 | _EDITOR_4, 64_000, 4096),
    "claude-3-7-sonnet": Model(_CLAUDE_4 | {"text_editor_20250124"}, 64_000, 1024),
    "claude-3-5-haiku": Model(frozenset({"web_search_20250305"}), 8192, 2048),
}
MODELS["claude-opus-4"] = MODELS["claude-opus-4-0"]
MODELS["claude-sonnet-4"] = MODELS["claude-sonnet-4-0"]
_SUFFIX = re.compile(r"-(\d{8}|latest)$")
MAX_CACHE_BREAKPOINTS = 4
# The API looks for a cache hit at block boundaries up to this many blocks before a breakpoint.
CACHE_LOOKBACK_BLOCKS = 20


@dataclass(frozen=True)
class Problem:
    """An error response: HTTP status, the error `type`, the API's message."""

    status: int
    type: str
    message: str


def invalid(message: str) -> Problem:
    return Problem(400, "invalid_request_error", message)


def model_of(name: str) -> Model | None:
    return MODELS.get(_SUFFIX.sub("", name))


def unknown_model(name: str) -> Problem:
    """What the API answers for a model id it does not know, or no longer serves (a
    retired model): 404 `not_found_error` whose message is "model: <id>"."""
    return Problem(404, "not_found_error", f"model: {name}")


def retired(name: str, retired_models: Iterable[str]) -> bool:
    """Whether `name` (an alias or a dated id) is one of `retired_models` (either kind)."""
    ids = set(retired_models)
    return name in ids or _SUFFIX.sub("", name) in ids


def check_body(body: Any, *, require_tools: bool) -> Problem | None:
    """The first thing the API would reject in `body`, or None."""
    if not isinstance(body, dict):
        return invalid("body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("model: Field required")
    model = model_of(body["model"])
    if model is None:
        return unknown_model(body["model"])
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return invalid("max_tokens: Field required")
    if max_tokens > model.max_output:
        return invalid(
            f"max_tokens: {max_tokens} > {model.max_output}, which is the maximum allowed "
            f"number of output tokens for {body['model']}"
        )
    if body.get("stream"):
        return invalid("the stand-in does not stream; call messages.create without stream=True")
    if require_tools and not body.get("tools"):
        return invalid("tools: expected the agent's tools in every request")
    return (
        _check_tools(body.get("tools") or [], body["model"], model)
        or _check_cache_breakpoints(body)
        or check_messages(body.get("messages"))
    )


def _check_tools(tools: list[Any], model_name: str, model: Model) -> Problem | None:
    names: set[str] = set()
    for index, tool in enumerate(tools):
        kind = tool.get("type", "custom")
        if kind == "custom":
            if not isinstance(tool.get("input_schema"), dict):
                return invalid(f"tools.{index}.custom.input_schema: Field required")
        elif kind not in model.tool_types:
            supported = ", ".join(sorted(model.tool_types))
            return invalid(
                f"'{model_name}' does not support tool types: {kind}. "
                f"Did you mean one of {supported}?"
            )
        elif tool.get("name") != TOOL_NAMES[kind]:
            return invalid(f"tools.{index}.{kind}.name: Input should be '{TOOL_NAMES[kind]}'")
        if tool.get("name") in names:
            return invalid("tools: Tool names must be unique.")
        names.add(tool.get("name"))
    return None


def _check_cache_breakpoints(body: dict[str, Any]) -> Problem | None:
    found = sum(1 for block in _blocks(body) if block[1].get("cache_control"))
    if found > MAX_CACHE_BREAKPOINTS:
        return invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return None


def check_messages(messages: Any) -> Problem | None:
    """Turn order, non-empty content, and tool_use/tool_result pairing."""
    if not isinstance(messages, list) or not messages:
        return invalid("messages: at least one message is required")
    last = len(messages) - 1
    expected = "user"
    for index, message in enumerate(messages):
        if message.get("role") != expected:
            # The API merges consecutive same-role turns; opus never sends them, so the
            # stand-in holds it to strict alternation.
            return invalid(f"messages.{index}: expected role {expected!r} (roles must alternate)")
        problem = _check_content(index, message, final=index == last)
        if problem is not None:
            return problem
        if message["role"] == "assistant":
            problem = _check_answered(index, message, messages[index + 1 : index + 2])
        elif index > 0:
            problem = _check_results(index, message, messages[index - 1])
        if problem is not None:
            return problem
        expected = "assistant" if expected == "user" else "user"
    return None


def _content(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


def _check_content(index: int, message: dict[str, Any], *, final: bool) -> Problem | None:
    blocks = _content(message)
    if not blocks and not (final and message["role"] == "assistant"):
        return invalid(
            f"messages.{index}: all messages must have non-empty content except for the "
            "optional final assistant message"
        )
    for position, block in enumerate(blocks):
        if block.get("type") == "text" and not str(block.get("text", "")).strip():
            return invalid(
                f"messages.{index}.content.{position}: text content blocks must contain "
                "non-whitespace text"
            )
    if final and message["role"] == "assistant" and blocks:
        tail = blocks[-1]
        if tail.get("type") == "text" and tail["text"] != tail["text"].rstrip():
            return invalid("final assistant content cannot end with trailing whitespace")
    return None


def _check_answered(
    index: int, message: dict[str, Any], following: list[dict[str, Any]]
) -> Problem | None:
    """Every tool_use needs its tool_result among the leading blocks of the next message."""
    uses = [b["id"] for b in _content(message) if b.get("type") == "tool_use"]
    if not uses or not following:
        return None
    leading: set[str] = set()
    for block in _content(following[0]):
        if block.get("type") != "tool_result":
            break
        leading.add(block.get("tool_use_id", ""))
    missing = [use for use in uses if use not in leading]
    if missing:
        return invalid(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    return None


def _check_results(index: int, message: dict[str, Any], previous: dict[str, Any]) -> Problem | None:
    uses = {b.get("id") for b in _content(previous) if b.get("type") == "tool_use"}
    for position, block in enumerate(_content(message)):
        if block.get("type") == "tool_result" and block.get("tool_use_id") not in uses:
            return invalid(
                f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                "must have a corresponding `tool_use` block in the previous message."
            )
    return None


# --------------------------------------------------------------------------- usage


def tokens_of(value: Any) -> int:
    """A rough token count (4 characters a token), as the stand-in's tokenizer."""
    return max(1, len(json.dumps(value, sort_keys=True, ensure_ascii=False)) // 4)


def _blocks(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The prompt in cache order (tools, system, messages) as (where, block) pairs."""
    out: list[tuple[str, dict[str, Any]]] = [("tools", tool) for tool in body.get("tools") or []]
    system = body.get("system") or []
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    out.extend(("system", block) for block in system)
    for index, message in enumerate(body.get("messages") or []):
        out.extend((f"{message.get('role')}.{index}", block) for block in _content(message))
    return out


@dataclass(frozen=True)
class Prefix:
    """The prompt's running hash and token count at each block boundary, and breakpoints."""

    hashes: list[str]
    tokens: list[int]
    breakpoints: list[int]

    @property
    def total(self) -> int:
        return self.tokens[-1] if self.tokens else 0

    def cacheable(self, model: Model) -> int:
        """Tokens up to the last breakpoint when they reach the model's minimum, else 0."""
        if not self.breakpoints:
            return 0
        last = self.tokens[self.breakpoints[-1]]
        return last if last >= model.min_cache_tokens else 0


def prefix_of(body: dict[str, Any]) -> Prefix:
    blocks = _blocks(body)
    digest = hashlib.sha256(body["model"].encode())
    hashes: list[str] = []
    tokens: list[int] = []
    total = 0
    for where, block in blocks:
        plain = {k: v for k, v in block.items() if k != "cache_control"}
        digest.update(json.dumps([where.split(".")[0], plain], sort_keys=True).encode())
        total += tokens_of(plain) + TOOL_OVERHEAD.get(str(block.get("type")), 0)
        hashes.append(digest.hexdigest())
        tokens.append(total)
    points = [i for i, (_, block) in enumerate(blocks) if block.get("cache_control")]
    return Prefix(hashes, tokens, points)


class PromptCache:
    """Prompt caching as the API documents it, over the stand-in's token estimate.

    A breakpoint writes the prefix up to it when that prefix is at least the model's
    minimum cacheable length; a later request reads the longest written prefix that
    ends at a block boundary within 20 blocks before one of its breakpoints.
    """

    def __init__(self) -> None:
        self._written: set[str] = set()

    def usage(self, body: dict[str, Any], model: Model) -> dict[str, int]:
        """input/cache usage of `body`, writing its cacheable prefixes."""
        prefix = prefix_of(body)
        read = 0
        for point in prefix.breakpoints:
            for i in range(point, max(-1, point - CACHE_LOOKBACK_BLOCKS), -1):
                if prefix.hashes[i] in self._written:
                    read = max(read, prefix.tokens[i])
                    break
        cacheable = prefix.cacheable(model)
        written = max(0, cacheable - read)
        for point in prefix.breakpoints:
            if prefix.tokens[point] >= model.min_cache_tokens:
                self._written.add(prefix.hashes[point])
        return {
            "input_tokens": max(1, prefix.total - read - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
