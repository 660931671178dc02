"""What a job's fork server imports for the `anthropic` engine (designs/lean.md).

Importing the engine brings in the SDK (~1 s). Making one client the way the engine
does, with a placeholder key and no request sent, also loads the HTTP transport, the
TLS trust store and what else the SDK only imports when a client is built — work each
job process would otherwise do before its first model call. Nothing here may stop the
fork server: a failure only means the job does that work itself.
"""

from __future__ import annotations

import contextlib

import anthropic

import opus.engines.anthropic_engine  # noqa: F401  (the engine, and the SDK with it)
from opus.trace import mark


def ready_client() -> None:
    """Build and close an SDK client (never used to send anything)."""
    with contextlib.suppress(Exception):
        anthropic.Anthropic(api_key="unused", max_retries=0).close()


ready_client()
mark("fork server: SDK loaded")
