"""Test output as opus keeps it: without terminal escapes, and with a hint when a failure
looks like the sandbox's doing rather than the code's.

Pure functions over text. A hint names the setting that allows what was refused, so the
person reading the note (or the coder reading its feedback) does not chase a bug in code
that would pass outside the sandbox.
"""

from __future__ import annotations

import re

HINT_PREFIX = "sandbox limit:"
"""Every hint starts with this, so a report's hint line can be found again."""

# CSI (colours, cursor moves), OSC (titles, links; ended by BEL or ST), and the
# two-character escapes; then any stray control character but tab and newline.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]"
)

_NAME_RESOLUTION = re.compile(
    r"Temporary failure in name resolution|Name or service not known|"
    r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN)|Could not resolve host|"
    r"nodename nor servname provided|No address associated with hostname",
    re.IGNORECASE,
)
_UNREACHABLE = re.compile(
    r"Network is unreachable|ENETUNREACH|connect: network is unreachable", re.IGNORECASE
)
_READ_ONLY = re.compile(r"(?P<path>/[^\s:'\"]*)?[^\n]{0,80}?Read-only file system|EROFS")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences and control characters; `\r\n` → `\n`."""
    return _ANSI.sub("", text.replace("\r\n", "\n"))


def sandbox_hint(output: str) -> str:
    """One line naming the sandbox limit `output` ran into, or "" when it shows none."""
    if _NAME_RESOLUTION.search(output) or _UNREACHABLE.search(output):
        what = "name resolution" if _NAME_RESOLUTION.search(output) else "the network"
        return (
            f"{HINT_PREFIX} the command needed {what}, and the sandbox has no network; "
            "set `sandbox.network = true` in opus.toml if the tests really need it "
            "(installs belong in the setup command, which `sandbox.setup_network` allows)"
        )
    found = _READ_ONLY.search(output)
    if found:
        where = f" ({found['path']})" if found["path"] else ""
        return (
            f"{HINT_PREFIX} the command wrote outside the worktree{where} and the sandbox "
            "keeps everything but the worktree and $TMPDIR read-only, $HOME included; "
            "point caches at $TMPDIR (e.g. XDG_CACHE_HOME) in the test command, or set "
            '`sandbox.kind = "none"` (unsafe: no isolation)'
        )
    return ""


def hint_of(report: str) -> str:
    """The hint line inside a failure report, or ""."""
    return next(
        (line.strip() for line in report.splitlines() if line.startswith(HINT_PREFIX)), ""
    )
