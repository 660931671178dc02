"""A restart reads the vault from the parse cache: only the notes changed since are parsed."""

from __future__ import annotations

import re
import stat
import time

from opus.domain import JobState
from opus.vault.parse_cache import CACHE_NAME, RACY_S
from tests.e2e_daemon.harness import Daemons, Workspace

DONE = "---\nid: OLD-{n}\ntitle: Old work\nstatus: done\njob: {job}\n{deps}---\nbody {n}\n"


def _walk(output: str) -> tuple[int, int, int]:
    """(notes, parsed, from the cache) of the daemon's first walk, from its log."""
    found = re.search(r"vault: (\d+) notes walked in [\d.]+ s \((\d+) parsed, (\d+) from the "
                      r"parse cache\)", output)
    assert found, output[-3000:]
    notes, parsed, cached = (int(group) for group in found.groups())
    return notes, parsed, cached


def test_a_second_start_parses_only_the_notes_changed_since(
    ws: Workspace, daemons: Daemons
) -> None:
    features = ws.root / "vault" / "10_features"
    (features / "06_done").mkdir()
    (features / "01_ideas").mkdir()
    for n in range(120):
        deps = f"depends_on: [OLD-{n - 1}]\n" if n % 3 else ""
        (features / "06_done" / f"OLD-{n}.md").write_text(
            DONE.format(n=n, job=1000 + n, deps=deps))
    for n in range(80):
        (features / "01_ideas" / f"idea {n}.md").write_text(f"# idea {n}\n\nsome text\n")
    time.sleep(RACY_S + 0.2)  # a long-lived vault: its notes are older than the racy margin

    first = daemons.start(ws, "--once")
    assert first.proc.wait(timeout=60) == 0, first.output
    assert _walk(first.output) == (200, 200, 0)
    cache = ws.root / ".opus" / CACHE_NAME
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    # While no daemon runs: an edit in place that keeps the size, a rename, a deletion,
    # a new planned FR.
    edited = features / "06_done" / "OLD-7.md"
    edited.write_text(edited.read_text().replace("body 7", "BODY 7"))
    (features / "01_ideas" / "idea 3.md").rename(features / "01_ideas" / "idea three.md")
    (features / "06_done" / "OLD-9.md").unlink()
    ws.write_fr("FR-1")

    second = daemons.start(ws, "--once")
    assert second.proc.wait(timeout=120) == 0, second.output
    assert _walk(second.output) == (200, 3, 197)
    job = ws.job("FR-1")
    assert job is not None and job.state is JobState.AWAITING_REVIEW, second.output
