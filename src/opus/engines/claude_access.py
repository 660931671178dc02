"""What the Claude Code CLI gets inside the sandbox, beyond what a command gets.

It needs its API transport (the network) and its credential; the sandbox would remove
both. It gets them, and a config dir of its own under the job's worktree in place of
the user's `~/.claude` (which the sandbox hides), and nothing else. See
designs/engines.md, "Engine `claude-code` in the sandbox", for what this exposes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from opus.seams import Grant

CREDENTIAL_VARIABLES: tuple[str, ...] = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
)
"""Taken from opus's environment and given to claude: its key or token (one from
`claude setup-token` for a subscription) and a gateway's endpoint."""

CLAUDE_SETTINGS: Mapping[str, str] = {
    # No auto-update, telemetry or error reports: the network is for the API only.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
"""Not set: `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB`, which would keep the credential from
claude's tools. Claude 2.1 then runs each tool in a bubblewrap sandbox of its own:
nested in opus's, that fails when opus runs as root, and otherwise leaves empty
mount-point files (`.env`, `package.json`, lock files...) in the worktree, which
opus would commit. So the tools see the credential (designs/engines.md)."""


def credential_names(environ: Mapping[str, str]) -> list[str]:
    """The credential variables set (non-empty) in `environ`, the endpoint left out."""
    return [
        name for name in CREDENTIAL_VARIABLES if name != "ANTHROPIC_BASE_URL" and environ.get(name)
    ]


def config_dir(scratch: Path) -> Path:
    """Claude's config dir (`CLAUDE_CONFIG_DIR`) in the run's scratch folder."""
    return scratch / "claude"


def claude_grant(environ: Mapping[str, str], scratch: Path) -> Grant:
    """What the sandbox grants the claude process: the network, the credential
    variables set in `environ`, the settings above, its config dir, and the `scratch`
    folder writable even when the worktree is read-only (planner, reviewer)."""
    env = {name: environ[name] for name in CREDENTIAL_VARIABLES if environ.get(name)}
    env.update(CLAUDE_SETTINGS)
    env["CLAUDE_CONFIG_DIR"] = str(config_dir(scratch))
    return Grant(network=True, env=env, writable_inside=(scratch,))
