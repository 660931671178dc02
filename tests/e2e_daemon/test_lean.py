"""The resident daemon stays small: the engine's SDK is imported only where jobs run."""

from __future__ import annotations

import subprocess
import sys

from opus.domain import JobState
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until


def test_the_daemon_never_imports_the_engine_sdk(ws: Workspace, daemons: Daemons) -> None:
    log = ws.root / "importtime.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "opus", "--config", str(ws.config), "run"],
            cwd=ws.root,
            env=daemons.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            ws.write_fr("FR-1")
            # A whole job ran (its engine is `anthropic`, against the stand-in)...
            ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)
            wait_until(lambda: "opus serving" in log.read_text(errors="replace"), "READY")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    # `-X importtime` reports every import, the fork server's (started after READY, and
    # passed the same flag) included: nothing before READY may be the SDK.
    ready = text.index("opus serving")
    before, after = _imports(text[:ready]), _imports(text[ready:])
    assert "opus.daemon.loop" in before, "importtime did not report"
    assert not [name for name in before if name.split(".")[0] == "anthropic"]
    assert "opus.engines.anthropic_engine" not in before
    # The job ran with the SDK: imported after READY, by the fork server.
    assert "anthropic" in after


def _imports(text: str) -> list[str]:
    return [line.split("|")[-1].strip() for line in text.splitlines()
            if line.startswith("import time:")]
