"""The README's exit-code table, checked row by row against the real CLI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from opus.daemon.logs import log_path
from opus.registry import open_store
from tests.e2e_cli.helpers import clean_env, run_opus
from tests.registry.factory import make_fr

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_codes() -> set[int]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("Exit codes:"):].split("\n\n")[1]
    return {int(m[1]) for m in re.finditer(r"^\| (\d+) \|", table, re.MULTILINE)}


def test_every_documented_exit_code_is_what_the_cli_returns(tmp_path: Path) -> None:
    assert _documented_codes() == {0, 1, 2, 130}
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    project = tmp_path / "p"
    store = open_store(f"sqlite:///{project / '.opus' / 'opus.db'}")
    job = store.enqueue(make_fr("FR-1"), project)
    store.close()
    log = log_path(project / ".opus", job.id)
    log.parent.mkdir(parents=True)
    log.write_text("stage plan (round 0) started\n")
    env = clean_env(tmp_path)

    # 0: done.
    assert run_opus("status", cwd=project, env=env).code == 0
    # 1: a runtime failure (the database does not answer); doctor found a FAIL (no key).
    down = clean_env(tmp_path, {"OPUS_DATABASE__URL": "postgresql://postgres@127.0.0.1:1/x"})
    assert run_opus("status", cwd=project, env=down).code == 1
    assert run_opus("doctor", cwd=project, env=env).code == 1
    # 2: usage, configuration, an FR or job that does not exist, a job in the wrong state.
    assert run_opus("frobnicate", cwd=project, env=env).code == 2
    assert run_opus("status", cwd=project,
                    env=clean_env(tmp_path, {"OPUS_DAEMON__MAX_CONCURRENT": "x"})).code == 2
    for argv in (["retry", "FR-404"], ["cancel", "404"], ["logs", "FR-404"], ["retry", "FR-1"]):
        result = run_opus(*argv, cwd=project, env=env)
        assert result.code == 2, (argv, result.err)
        assert "Traceback" not in result.err

    # 130: interrupted. `logs -f` of a queued job follows until Ctrl-C.
    follow = subprocess.Popen([sys.executable, "-m", "opus", "logs", "-f", "FR-1"], cwd=project,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follow.stdout is not None
        # The first line printed: it is inside the command, past start-up, following.
        assert follow.stdout.readline() == b"stage plan (round 0) started\n"
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert follow.returncode == 130 and b"Traceback" not in err
