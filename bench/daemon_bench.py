"""Figures for issue 4's discovery promises; run `python3 bench/daemon_bench.py`.

1. Pickup latency: an intake daemon (`opus run --role intake`, a real subprocess whose
   poll delays are 30 s) idles; a planned FR note is saved; how long until its job is
   in the registry. Only the file watcher can make this short.
2. Incremental rescan over a 10,000-note vault: the cold scan, an idle rescan (nothing
   changed) and a rescan after one note changed, with the daemon's note cache.

Prints one line per figure. Nothing here is asserted: tests prove behaviour, this
measures it.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opus.registry import open_store
from opus.vault import NoteCache, scan_vault

NOTE = """\
---
id: {fr_id}
title: Benchmark note {fr_id}
status: {status}
priority: medium
test_command: "true"
---
# Summary

Nothing to build; this note only has to be read, parsed and validated.
"""

CONFIG = """\
[vault]
path = "vault"
[daemon]
state_dir = ".opus"
poll_active_s = 30
poll_idle_s = 30
[git]
default_repo = "repo"
"""


def _git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@opus.invalid"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def _workspace(root: Path) -> None:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# bench\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    (root / "vault" / "10_features" / "03_planned").mkdir(parents=True)
    (root / "opus.toml").write_text(CONFIG)


def _save(path: Path, text: str) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    temp.rename(path)


def _wait(check: Callable[[], object], timeout_s: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"nothing happened within {timeout_s}s")
        time.sleep(0.005)
    return time.monotonic() - start


def pickup_latency(samples: int) -> list[float]:
    """Seconds from saving a planned note to its job existing, per sample."""
    with tempfile.TemporaryDirectory(prefix="opus-bench-") as tmp:
        root = Path(tmp)
        _workspace(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "opus", "run", "--role", "intake"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            database = root / ".opus" / "opus.db"
            _wait(database.exists, 30)
            store = open_store(f"sqlite:///{database}")
            time.sleep(2)  # let the first pass end, so the daemon is in its 30 s sleep
            latencies = []
            for n in range(samples):
                fr_id = f"BENCH-{n}"
                note = root / "vault" / "10_features" / "03_planned" / f"{fr_id}.md"
                _save(note, NOTE.format(fr_id=fr_id, status="planned"))
                latencies.append(_wait(functools.partial(store.latest_for_fr, fr_id), 30))
                time.sleep(1)  # back to sleep before the next sample
            return latencies
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)


def rescan_costs(notes: int) -> tuple[float, float, float]:
    """Seconds for a cold scan, an idle rescan and a rescan after one edit."""
    with tempfile.TemporaryDirectory(prefix="opus-bench-") as tmp:
        root = Path(tmp)
        drafts = root / "10_features" / "02_drafts"
        drafts.mkdir(parents=True)
        for n in range(notes):
            (drafts / f"N-{n}.md").write_text(NOTE.format(fr_id=f"N-{n}", status="draft"))
        cache = NoteCache()

        def timed() -> float:
            start = time.perf_counter()
            scan_vault(root, default_repo=None, cache=cache)
            return time.perf_counter() - start

        cold = timed()
        idle = min(timed() for _ in range(3))
        _save(drafts / "N-7.md", NOTE.format(fr_id="N-7", status="draft") + "\nEdited.\n")
        one_changed = timed()
        return cold, idle, one_changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="pickup samples")
    parser.add_argument("--notes", type=int, default=10_000, help="vault size for rescans")
    args = parser.parse_args()
    latencies = pickup_latency(args.samples)
    print(
        f"pickup latency (poll 30 s, watcher): median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s over {len(latencies)} notes"
    )
    cold, idle, one = rescan_costs(args.notes)
    print(f"scan of {args.notes} notes: cold {cold:.3f} s, idle rescan {idle:.3f} s, "
          f"rescan after one edit {one:.3f} s")


if __name__ == "__main__":
    main()
