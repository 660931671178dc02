"""Readable scripted conversations for the Messages-API stand-in, one role at a time.

Each helper returns the replies one agent stage plays, in order. A pipeline's script is
these lists concatenated in the order the stages run (one job at a time, so the order is
fixed). The `requests_of` / `first_messages` readers turn the stand-in's request log back
into per-role views, telling roles apart by the tools they were offered.
"""

from __future__ import annotations

from typing import Any

from tests.standins.messages_api import MessagesAPI, Reply, reply, text, tool_use

EDITOR = "str_replace_based_edit_tool"

CALC = "def add(a, b):\n    return a + b\n"
CALC_WITH_SUB = CALC + "\n\ndef sub(a, b):\n    return a - b\n"
CALC_WITH_DOCUMENTED_SUB = CALC + '\n\ndef sub(a, b):\n    """a - b."""\n    return a - b\n'
CALC_WITH_BAD_SUB = CALC + "\n\ndef sub(a, b):\n    return a + b\n"
TEST_SUB = (
    "from calc import sub\n\n"
    "result = sub(5, 3)\n"
    "assert result == 2, f'sub(5, 3) returned {result}, expected 2'\n"
    "print('sub ok')\n"
)
REPO_FILES = {"README.md": "# calc\n", "calc.py": CALC}
TEST_COMMAND = "python3 test_sub.py"

PLAN = {
    "summary": "Add sub(a, b) to calc.py with a test.",
    "steps": [
        {"title": "Add sub to calc.py", "postcondition": "sub(5, 3) == 2"},
        {"title": "Add test_sub.py", "postcondition": "python3 test_sub.py exits 0"},
    ],
}


def planner(plan: dict[str, Any] | None = None) -> list[Reply]:
    """The planner looks around with `ls`, then submits the plan."""
    return [
        reply(text("Let me look at the repository."), tool_use("bash", {"command": "ls"})),
        reply(tool_use("submit_plan", plan or PLAN)),
    ]


def coder(
    files: dict[str, str], summary: str = "Added sub and its test.", *, run: str | None = None
) -> list[Reply]:
    """The coder writes each file with the editor (`create`), optionally runs a command
    with bash, then ends its turn."""
    writes = [
        reply(tool_use(EDITOR, {"command": "create", "path": path, "file_text": body}))
        for path, body in files.items()
    ]
    checks = [reply(tool_use("bash", {"command": run}))] if run else []
    return [*writes, *checks, reply(text(summary))]


def good_coder() -> list[Reply]:
    """Writes sub and its test, and runs the test itself before ending its turn."""
    return coder({"calc.py": CALC_WITH_SUB, "test_sub.py": TEST_SUB}, run=TEST_COMMAND)


def bad_coder() -> list[Reply]:
    return coder({"calc.py": CALC_WITH_BAD_SUB, "test_sub.py": TEST_SUB}, "Added sub.")


def approve(summary: str = "Looks right; sub is tested.") -> list[Reply]:
    return [reply(tool_use("submit_review", {"verdict": "approve", "summary": summary}))]


def request_changes(summary: str, comments: list[dict[str, Any]]) -> list[Reply]:
    review = {"verdict": "request_changes", "summary": summary, "comments": comments}
    return [reply(tool_use("submit_review", review))]


# --------------------------------------------------------------------------- readers


def role_of(body: dict[str, Any]) -> str:
    """Which role sent a request, from the tools it offered (SPEC §5)."""
    names = {tool.get("name") for tool in body.get("tools") or []}
    if "submit_plan" in names:
        return "planner"
    if "submit_review" in names:
        return "reviewer"
    return "coder"


def requests_of(api: MessagesAPI, role: str) -> list[dict[str, Any]]:
    """The request bodies a role sent, in order."""
    return [body for body in api.bodies if role_of(body) == role]


def first_messages(api: MessagesAPI, role: str) -> list[str]:
    """The first user message of each run of `role` (a run starts with one message)."""
    return [
        _text_of(body["messages"][0])
        for body in requests_of(api, role)
        if len(body["messages"]) == 1
    ]


def _text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")
