"""The client side of Anthropic's text editor tool (`str_replace_based_edit_tool`).

Every path is confined to the worktree: relative paths start at its root, absolute ones
must lie inside it, symlinks are resolved before the check, and `.git` is off limits.
Failures come back as error results for the model to read, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opus.engines.models import CURRENT_TOOLS
from opus.errors import OpusError

# The current version; older models get theirs from `engines.models.tools_for`.
EDITOR_TOOL: dict[str, Any] = {
    "type": CURRENT_TOOLS.editor_type,
    "name": CURRENT_TOOLS.editor_name,
}
# A view larger than this would crowd the model's context; it is cut and says how to page.
MAX_VIEW_CHARS = 40_000
LISTING_DEPTH = 2
WRITE_COMMANDS = frozenset({"create", "str_replace", "insert"})


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gives back to the model."""

    content: str
    is_error: bool = False


class _Refused(OpusError):
    """A tool input the editor will not act on; its message goes back to the model."""


class Editor:
    """Runs editor commands inside `root`; `read_only` honours only `view`."""

    def __init__(self, root: Path, *, read_only: bool) -> None:
        self.root = root.resolve()
        self.read_only = read_only

    def __call__(self, tool_input: Mapping[str, Any]) -> ToolResult:
        """Execute one tool call; every problem becomes an error result."""
        try:
            return ToolResult(self._dispatch(tool_input))
        except _Refused as exc:
            return ToolResult(str(exc), is_error=True)
        except OSError as exc:
            return ToolResult(f"Error: {exc.strerror or exc} ({exc.filename})", is_error=True)

    def _dispatch(self, tool_input: Mapping[str, Any]) -> str:
        command = tool_input.get("command")
        if command == "view":
            return self._view(self.resolve(_text(tool_input, "path")), tool_input.get("view_range"))
        if command not in WRITE_COMMANDS:
            raise _Refused(
                f"Error: unknown command {command!r}; use view, create, str_replace or insert."
            )
        if self.read_only:
            raise _Refused(
                f"Error: `{command}` is not allowed in this role; the worktree is read-only "
                "here and only `view` works."
            )
        path = self.resolve(_text(tool_input, "path"))
        if command == "create":
            return self._create(path, _text(tool_input, "file_text", allow_empty=True))
        if command == "str_replace":
            new = tool_input.get("new_str") or ""
            return self._str_replace(path, _text(tool_input, "old_str"), str(new))
        return self._insert(path, tool_input)

    def resolve(self, raw: str) -> Path:
        """The real path of `raw` (relative to the root), refused if it leaves the root."""
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = candidate.resolve()
        if not real.is_relative_to(self.root):
            raise _Refused(
                f"Error: {raw} is outside the worktree {self.root}; only paths inside it "
                "can be used."
            )
        if ".git" in real.relative_to(self.root).parts:
            raise _Refused(f"Error: {raw} is inside .git, which agents must not touch.")
        return real

    def _view(self, path: Path, view_range: Any) -> str:
        if path.is_dir():
            return self._listing(path)
        lines = _read(path).split("\n")
        start, end = _range(view_range, len(lines))
        numbered = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
        if len(numbered) > MAX_VIEW_CHARS:
            numbered = numbered[:MAX_VIEW_CHARS] + (
                f"\n[output cut at {MAX_VIEW_CHARS} characters; the file has {len(lines)} "
                "lines: use view_range to read the rest]"
            )
        return f"Here's the result of running `cat -n` on {path}:\n{numbered}"

    def _listing(self, directory: Path) -> str:
        entries: list[str] = []
        # Paths relative to the root work in the editor and in bash (which starts there).
        _walk(self.root, directory, LISTING_DEPTH, entries)
        body = "\n".join(entries) or "(empty directory)"
        return (
            f"Files and directories up to {LISTING_DEPTH} levels deep in {directory}, "
            f"excluding hidden items (paths relative to {self.root}):\n{body}"
        )

    def _create(self, path: Path, text: str) -> str:
        if path.is_dir():
            raise _Refused(f"Error: {path} is a directory; give a file path to create.")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        path.write_bytes(text.encode("utf-8"))
        return f"File {'overwritten' if existed else 'created'} successfully at: {path}"

    def _str_replace(self, path: Path, old: str, new: str) -> str:
        text = _read(path)
        count = text.count(old)
        if count == 0:
            raise _Refused(
                f"Error: no match for old_str in {path}; view the file and copy the text "
                "exactly, including whitespace."
            )
        if count > 1:
            lines = [str(n) for n, line in enumerate(text.split("\n"), 1) if old in line]
            raise _Refused(
                f"Error: old_str occurs {count} times in {path} (lines {', '.join(lines) or '?'}); "
                "include more surrounding lines so that it matches exactly once."
            )
        path.write_bytes(text.replace(old, new, 1).encode("utf-8"))
        return f"The file {path} has been edited: 1 occurrence replaced."

    def _insert(self, path: Path, tool_input: Mapping[str, Any]) -> str:
        # text_editor_20250728 names the text `insert_text`; older versions said `new_str`.
        raw_text = tool_input.get("insert_text", tool_input.get("new_str"))
        if not isinstance(raw_text, str):
            raise _Refused("Error: insert needs `insert_text` (a string).")
        line = tool_input.get("insert_line")
        lines = _read(path).split("\n")
        if not isinstance(line, int) or isinstance(line, bool) or not 0 <= line <= len(lines):
            raise _Refused(
                f"Error: insert_line must be an integer from 0 to {len(lines)} for {path}; "
                f"got {line!r}."
            )
        new_lines = raw_text.split("\n")
        if raw_text.endswith("\n"):
            new_lines = new_lines[:-1]
        merged = [*lines[:line], *new_lines, *lines[line:]]
        path.write_bytes("\n".join(merged).encode("utf-8"))
        return f"The file {path} has been edited: text inserted after line {line}."


def _text(tool_input: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise _Refused(f"Error: parameter `{key}` is required and must be a string.")
    return value


def _read(path: Path) -> str:
    if not path.exists():
        raise _Refused(f"Error: {path} does not exist; use `view` on a directory to find files.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(
            f"Error: {path} is binary or not UTF-8; it cannot be shown or edited."
        ) from exc


def _range(view_range: Any, line_count: int) -> tuple[int, int]:
    if view_range is None:
        return 1, line_count
    valid = (
        isinstance(view_range, list)
        and len(view_range) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in view_range)
    )
    if not valid:
        raise _Refused("Error: view_range must be two integers [start, end]; end -1 means EOF.")
    start, end = view_range
    end = line_count if end == -1 else end
    if not 1 <= start <= end <= line_count:
        raise _Refused(
            f"Error: view_range {view_range} does not fit the file's {line_count} lines."
        )
    return start, end


def _walk(base: Path, directory: Path, depth: int, out: list[str]) -> None:
    for child in sorted(directory.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        rel = child.relative_to(base)
        is_dir = child.is_dir() and not child.is_symlink()
        out.append(f"{rel}/" if is_dir else str(rel))
        if is_dir and depth > 1:
            _walk(base, child, depth - 1, out)
