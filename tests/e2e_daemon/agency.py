"""Scripted planner, coder and reviewer that work for any FR, behind the Messages API stand-in.

`Agency` is one callable responder for every request the daemon's real `anthropic` engine
sends. It tells the role from the tools offered (`submit_plan` → planner, `submit_review`
→ reviewer, else coder) and the FR from the first user message, and plays:

- planner: `submit_plan` at once;
- coder: create `<fr-id-lowercase>.txt` with the editor tool, then end its turn;
- reviewer: `submit_review` approve.

It counts conversations per (FR, role) — a conversation starts with a one-message
request — so a test can prove a completed stage never ran twice. A test holds a role with
`hold(fr, role, gate)`: the first turn of that conversation waits (bounded) on `gate`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.standins.messages_api import ApiError, Hang, MessagesAPI, reply, text, tool_use

FR_PATTERN = re.compile(r"# Feature request (\S+):")
HOLD_LIMIT_S = 20.0
"""No held request waits longer than this, whatever the test does."""

Responder = Callable[[dict[str, Any]], dict[str, Any] | ApiError | Hang]


def role_of(body: dict[str, Any]) -> str:
    names = {tool.get("name") for tool in body.get("tools", [])}
    if "submit_plan" in names:
        return "planner"
    if "submit_review" in names:
        return "reviewer"
    return "coder"


def fr_of(body: dict[str, Any]) -> str:
    first = body["messages"][0]["content"]
    words = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
    found = FR_PATTERN.search(words)
    assert found, f"no FR id in the first user message: {words[:200]!r}"
    return found.group(1)


def file_for(fr_id: str) -> str:
    """The file the scripted coder writes for `fr_id`."""
    return f"{fr_id.lower()}.txt"


@dataclass
class Agency:
    """The responder; thread-safe (the stand-in serves requests in parallel)."""

    conversations: Counter[tuple[str, str]] = field(default_factory=Counter)
    waiting: set[tuple[str, str]] = field(default_factory=set)
    """(FR, role) pairs whose request is being held right now."""
    overrides: dict[tuple[str, str], Responder] = field(default_factory=dict)
    think_s: float = 0.0
    """How long each reply takes, as a model's does (0: at once)."""
    _holds: dict[tuple[str, str], tuple[threading.Event, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(
        self, fr_id: str, role: str, gate: threading.Event, limit_s: float = HOLD_LIMIT_S
    ) -> None:
        """Hold the first turn of `role` for `fr_id` until `gate` is set or `limit_s` passed."""
        self._holds[(fr_id, role)] = (gate, min(limit_s, HOLD_LIMIT_S))

    def count(self, fr_id: str, role: str) -> int:
        with self._lock:
            return self.conversations[(fr_id, role)]

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | ApiError | Hang:
        key = (fr_of(body), role_of(body))
        first_turn = len(body["messages"]) == 1
        if first_turn:
            with self._lock:
                self.conversations[key] += 1
            self._wait(key)
        if self.think_s:
            time.sleep(self.think_s)
        override = self.overrides.get(key)
        if override is not None:
            return override(body)
        return scripted_reply(key[0], key[1], body)

    def _wait(self, key: tuple[str, str]) -> None:
        held = self._holds.get(key)
        if held is None:
            return
        gate, limit_s = held
        with self._lock:
            self.waiting.add(key)
        try:
            gate.wait(timeout=limit_s)
        finally:
            with self._lock:
                self.waiting.discard(key)


def scripted_reply(fr_id: str, role: str, body: dict[str, Any]) -> dict[str, Any]:
    """The default reply of `role` for `fr_id` at this point of the conversation."""
    if role == "planner":
        plan = {
            "summary": f"Write {file_for(fr_id)}.",
            "steps": [{"title": "Create the file", "postcondition": "it exists"}],
        }
        return reply(tool_use("submit_plan", plan))
    if role == "reviewer":
        verdict = {"verdict": "approve", "summary": "Looks right.", "comments": []}
        return reply(tool_use("submit_review", verdict))
    if not _created(body):
        create = {"command": "create", "path": file_for(fr_id), "file_text": f"{fr_id}\n"}
        return reply(tool_use("str_replace_based_edit_tool", create))
    return reply(text(f"Wrote {file_for(fr_id)}."))


def _created(body: dict[str, Any]) -> bool:
    """Whether the coder already created its file in this conversation."""
    for message in body["messages"]:
        content = message["content"] if message["role"] == "assistant" else []
        if any(block.get("name") == "str_replace_based_edit_tool" for block in content):
            return True
    return False


def busy_coder(fr_id: str, done: threading.Event, pause_s: float = 0.1) -> Responder:
    """A coder that keeps working (a new command each turn) until `done` is set.

    An agent at work between turns is where a stop request lands; afterwards it does
    the usual: write its file and end its turn.
    """

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if done.is_set():
            return scripted_reply(fr_id, "coder", body)
        time.sleep(pause_s)
        return reply(tool_use("bash", {"command": f"echo working {len(body['messages'])}"}))

    return respond


def start_api(agency: Agency) -> MessagesAPI:
    """A started stand-in whose every request goes to `agency`."""
    api = MessagesAPI()
    api.script = _Endless(agency)
    return api.start()


class _Endless(list[Any]):
    """A script that never runs out: every pop returns the same responder."""

    def __init__(self, responder: Responder) -> None:
        super().__init__([responder])
        self._responder = responder

    def pop(self, _index: Any = -1) -> Responder:
        return self._responder
