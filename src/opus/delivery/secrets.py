"""Secret scan of what a delivery adds: the added lines of the diff and the PR body.

Uses the detect-secrets plugin set (see designs/delivery.md for why and for the tuning).
Findings name the file, line and kind of secret — never the secret itself.
"""

from __future__ import annotations

import codecs
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PR_BODY = "<PR body>"
"""The file name findings in the PR body are reported under."""

# Every detect-secrets plugin except three that flag ordinary code (see the design note):
# KeywordDetector (`password = "x"` in tests), IPPublicDetector (addresses are not
# secrets) and HexHighEntropyString (commit hashes, checksums, fixture ids).
PLUGINS: tuple[dict[str, Any], ...] = (
    {"name": "ArtifactoryDetector"},
    {"name": "AWSKeyDetector"},
    {"name": "AzureStorageKeyDetector"},
    {"name": "BasicAuthDetector"},
    {"name": "CloudantDetector"},
    {"name": "DiscordBotTokenDetector"},
    {"name": "GitHubTokenDetector"},
    {"name": "GitLabTokenDetector"},
    {"name": "IbmCloudIamDetector"},
    {"name": "IbmCosHmacDetector"},
    {"name": "JwtTokenDetector"},
    {"name": "MailchimpDetector"},
    {"name": "NpmDetector"},
    {"name": "OpenAIDetector"},
    {"name": "PrivateKeyDetector"},
    {"name": "PypiTokenDetector"},
    {"name": "SendGridDetector"},
    {"name": "SlackDetector"},
    {"name": "SoftlayerDetector"},
    {"name": "SquareOAuthDetector"},
    {"name": "StripeDetector"},
    {"name": "TelegramBotTokenDetector"},
    {"name": "TwilioKeyDetector"},
    {"name": "Base64HighEntropyString", "limit": 4.5},
)

# The default heuristic filters minus `is_line_allowlisted`: the code under scan was
# written by an agent, and a `# pragma: allowlist secret` comment must not let it
# smuggle a key out.
FILTERS: tuple[dict[str, Any], ...] = tuple(
    {"path": f"detect_secrets.filters.heuristic.{name}"}
    for name in (
        "is_sequential_string",
        "is_potential_uuid",
        "is_likely_id_string",
        "is_templated_secret",
        "is_prefixed_with_dollar_sign",
        "is_indirect_reference",
        "is_lock_file",
        "is_not_alphanumeric_string",
        "is_swagger_file",
    )
)

# detect-secrets keeps its settings in process-global state; workers are threads.
_LOCK = threading.Lock()
_COMMIT_PREFIX = re.compile(r"^[0-9a-f]{4,64}:")  # `sha:path`, git's notation
_HUNK = re.compile(r"^@@ -\d+(?:,(?P<old_n>\d+))? \+(?P<new>\d+)(?:,(?P<new_n>\d+))? @@")


@dataclass(frozen=True)
class Finding:
    """A likely secret: where it is and what kind, without its value."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def added_lines(diff: str) -> dict[str, dict[int, str]]:
    """path → {line number in the new file: text} for every line a unified diff adds.

    Hunk headers' counts say how many lines belong to a hunk, so an added line that
    itself starts with `++ ` or `@@` is never taken for a header.
    """
    out: dict[str, dict[int, str]] = {}
    current: dict[int, str] = {}
    line_no = old_left = new_left = 0
    for raw in diff.splitlines():
        if old_left > 0 or new_left > 0:
            kind = raw[:1]
            if kind in ("+", " "):
                if kind == "+":
                    current[line_no] = raw[1:]
                line_no += 1
                new_left -= 1
            if kind in ("-", " "):
                old_left -= 1
        elif raw.startswith("+++ "):
            path = _diff_path(raw[4:])
            current = {} if path is None else out.setdefault(path, {})
        elif (hunk := _HUNK.match(raw)) is not None:
            line_no = int(hunk["new"])
            old_left, new_left = _count(hunk["old_n"]), _count(hunk["new_n"])
    return {path: lines for path, lines in out.items() if lines}


def _count(value: str | None) -> int:
    return 1 if value is None else int(value)


def scan_added(
    files: Mapping[str, Mapping[int, str]], *, texts: Mapping[str, str] | None = None
) -> list[Finding]:
    """Findings in the given added lines (path → line → text) and whole `texts`
    (name → text, e.g. the PR body), sorted by place."""
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import transient_settings

    with _LOCK, tempfile.TemporaryDirectory(prefix="opus-scan-") as tmp:
        names = _materialise(Path(tmp), files, texts or {})
        with transient_settings({"plugins_used": list(PLUGINS), "filters_used": list(FILTERS)}):
            found = SecretsCollection(root=tmp)
            for name in names.values():
                found.scan_file(name)
            findings = {
                Finding(_original(names, filename), secret.line_number, secret.type)
                for filename, secret in found
            }
    return sorted(findings, key=lambda f: (f.path, f.line, f.kind))


def _original(names: Mapping[str, str], scanned: str) -> str:
    for original, stored in names.items():
        if stored == scanned:
            return original
    return scanned


def _materialise(
    root: Path, files: Mapping[str, Mapping[int, str]], texts: Mapping[str, str]
) -> dict[str, str]:
    """Write each file's added lines at their line numbers (other lines blank) under
    `root`, keeping the base name the scanner's filters look at (lock files).
    Returns original path → stored name."""
    from detect_secrets.filters.heuristic import IGNORED_FILE_EXTENSIONS

    names: dict[str, str] = {}
    for index, (path, lines) in enumerate(_all(files, texts)):
        name = Path(_COMMIT_PREFIX.sub("", path)).name or "file"
        if Path(name).suffix in IGNORED_FILE_EXTENSIONS:
            # Text that git diffs is text, whatever its extension says: scan it.
            name += ".txt"
        stored = f"{index}/{name}"
        (root / str(index)).mkdir()
        last = max(lines, default=0)
        body = "\n".join(lines.get(n, "") for n in range(1, last + 1)) + "\n"
        (root / stored).write_text(body, encoding="utf-8", errors="replace")
        names[path] = stored
    return names


def _all(
    files: Mapping[str, Mapping[int, str]], texts: Mapping[str, str]
) -> Iterator[tuple[str, Mapping[int, str]]]:
    yield from files.items()
    for name, text in texts.items():
        yield name, dict(enumerate(text.splitlines(), start=1))


def _diff_path(header: str) -> str | None:
    """The new-side path of a `+++ ` header; None for deletions."""
    header = header.split("\t", 1)[0]
    if header == "/dev/null":
        return None
    if header.startswith('"') and header.endswith('"'):
        header = _unquote(header[1:-1])
    return header[2:] if header.startswith("b/") else header


def _unquote(quoted: str) -> str:
    # git C-quotes unusual names: octal escapes of UTF-8 bytes, \" \\ \t \n.
    raw = codecs.escape_decode(quoted.encode("utf-8"))[0]
    return bytes(raw).decode("utf-8", errors="replace")
