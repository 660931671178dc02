"""Loop detection for agent tool calls (pure: no I/O, no clock).

A model that repeats itself is burning money without progress. Two patterns end a run:
the very same call several times in a row, or one failing call retried again and again
(possibly with other calls in between).
"""

from __future__ import annotations

import json
from typing import Any

# Four identical calls in a row: three could be a legitimate "run tests, look, run again"
# on an unchanged tree; a fourth identical one has learned nothing from the previous three.
REPEAT_LIMIT = 4
# The same call failing three times in one stage will not succeed on the fourth try.
FAILING_REPEAT_LIMIT = 3


def call_key(name: str, tool_input: Any) -> str:
    """A stable identity for a tool call: its name and canonical JSON input."""
    return name + " " + json.dumps(tool_input, sort_keys=True, default=str)


class LoopGuard:
    """Feed it every tool call; it names the loop when one is detected."""

    def __init__(self) -> None:
        self._last: str | None = None
        self._streak = 0
        self._failures: dict[str, int] = {}

    def before(self, name: str, tool_input: Any) -> str | None:
        """Call before running a tool; a string (the reason) means: do not run it, stop."""
        key = call_key(name, tool_input)
        self._streak = self._streak + 1 if key == self._last else 1
        self._last = key
        if self._streak >= REPEAT_LIMIT:
            return f"the same tool call was made {self._streak} times in a row: {key}"
        return None

    def after(self, name: str, tool_input: Any, *, failed: bool) -> str | None:
        """Call after a tool ran; a string (the reason) means the run should stop."""
        if not failed:
            return None
        key = call_key(name, tool_input)
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] >= FAILING_REPEAT_LIMIT:
            return f"the same failing tool call was repeated {self._failures[key]} times: {key}"
        return None
