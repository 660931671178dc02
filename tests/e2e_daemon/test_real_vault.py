"""A real daemon pointed at a vault a person lives in: only FR notes change, a problem is
logged once (not again by a restart over the same note), a note saved while typing makes
one job, a note opus cannot write back makes one job, not one a tick."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opus.domain import JobState
from opus.vault.problems import PROBLEMS_FILE
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.vault.corpus import UNUSABLE
from tests.vault.test_corpus import check_corpus, write_corpus

IDLE_POLL = {"poll_idle_s": 0.2}
"""An idle loop turning five times a second: ten idle turns take two seconds."""


def _features(ws: Workspace) -> Path:
    return ws.root / "vault" / "10_features"


def test_run_once_then_a_daemon_touch_only_fr_notes(tmp_path: Path, daemons: Daemons) -> None:
    ws = Workspace(tmp_path)
    write_corpus(_features(ws))
    once = daemons.start(ws, "--once")
    assert once.proc.wait(timeout=120) in (0, 1), once.output
    check_corpus(ws.root / "vault", ws.root / ".opus")
    assert [job.fr_id for job in ws.store.jobs()] == ["FR-1"]
    status = subprocess.run([sys.executable, "-m", "opus", "--config", str(ws.config), "status",
                             "--json"], cwd=ws.root, capture_output=True, text=True, timeout=60,
                            check=True)
    listed = {p["path"]: p["reason"] for p in json.loads(status.stdout)["problems"]}
    for rel, (_data, words, _rewritable) in UNUSABLE.items():
        assert words in listed[f"10_features/{rel}"], (rel, listed)

    recorded = ws.root / ".opus" / PROBLEMS_FILE
    before = recorded.stat().st_mtime_ns
    ws.write_config(daemon=IDLE_POLL)
    daemon = daemons.start(ws)
    started = time.monotonic()
    wait_until(lambda: "opus serving" in daemon.output, "the daemon to serve", 60)
    print(f"daemon serving after {time.monotonic() - started:.1f}s")
    wait_until(lambda: recorded.stat().st_mtime_ns != before, "the daemon's intake to run", 60)
    time.sleep(2.4)  # twelve turns of an idle loop
    assert daemon.proc.poll() is None, daemon.output
    check_corpus(ws.root / "vault", ws.root / ".opus")
    assert [job.fr_id for job in ws.store.jobs()] == ["FR-1"]
    # Each problem was logged once, by the `--once` run; not again by this start, nor a turn.
    assert once.output.count("cannot be used") == len(UNUSABLE), once.output
    assert daemon.output.count("cannot be used") == 0, daemon.output
    code = daemon.stop()
    assert code == 0, daemon.output[-3000:]

    edited = next(rel for rel, (_data, _words, rewritable) in UNUSABLE.items() if not rewritable)
    note = _features(ws) / edited
    note.write_bytes(note.read_bytes() + b"edited while no daemon ran\n")  # still unusable
    again = daemons.start(ws)
    wait_until(lambda: f"{edited} cannot be used" in again.output, "the edited note logged", 60)
    time.sleep(3)
    assert again.output.count("cannot be used") == 1, again.output
    assert again.stop() == 0, again.output[-3000:]


TYPIST = textwrap.dedent("""
    import os, random, sys, time
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    words = ["p", "pl", "plan", "plann", "planne", "planned"]
    for word in words:
        text = ("---\\nid: FR-601\\ntitle: Typed while the daemon runs\\nstatus: " + word
                + "\\ntest_command: grep -q FR-601 fr-601.txt\\n---\\nWrite the file.\\n")
        tmp = os.path.join(os.path.dirname(path), ".FR-601.md.swp")
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
        time.sleep(rng.uniform(0.2, 1.5))
""")


def test_saving_while_typing_makes_one_note_and_one_job(
    tmp_path: Path, daemons: Daemons
) -> None:
    ws = Workspace(tmp_path)
    # The default settle time, longer than the typist's pauses.
    ws.write_config(vault={"settle_s": 2})
    daemon = daemons.start(ws)
    wait_until(lambda: "opus serving" in daemon.output, "the daemon to serve")
    note = _features(ws) / "03_planned" / "FR-601.md"
    typist = subprocess.run([sys.executable, "-c", TYPIST, str(note), "7"], timeout=60,
                            check=True)
    assert typist.returncode == 0
    ws.wait_state("FR-601", JobState.AWAITING_REVIEW, JobState.DONE, timeout_s=60)
    time.sleep(3)
    notes = sorted(p.relative_to(_features(ws)) for p in _features(ws).rglob("FR-601*.md"))
    assert len(notes) == 1, notes
    assert not list(_features(ws).rglob("* (2).md"))
    assert len(ws.store.jobs()) == 1
    assert daemon.stop() == 0


def test_a_note_opus_cannot_write_back_runs_once(
    tmp_path: Path, daemons: Daemons, agency: Agency
) -> None:
    ws = Workspace(tmp_path)
    note = _features(ws) / "03_planned" / "FR-1.md"
    text = ("---\n{id: FR-1, title: Write FR-1, status: planned, "
            "test_command: grep -q FR-1 fr-1.txt}\n---\nWrite the file for FR-1.\n")
    note.write_text(text)
    ws.write_config(daemon=IDLE_POLL)
    daemon = daemons.start(ws)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW, JobState.DONE, JobState.FAILED,
                  timeout_s=60)
    time.sleep(2)  # ten idle turns at poll_idle_s = 0.2
    assert len(ws.store.jobs()) == 1
    assert agency.count("FR-1", "planner") == 1
    assert note.read_text() == text
    assert daemon.output.count("could not update") == 1, daemon.output
    assert daemon.stop() == 0
