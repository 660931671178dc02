"""A folder renamed or moved in the vault, seen through the real watcher (watchfiles) and
the real intake on a tmp vault: its notes are at their new paths within the watcher's
latency, not at the 5-minute safety walk."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opus.daemon.intake import Intake
from opus.daemon.watch import VaultWatcher
from opus.domain import FRStatus
from tests.e2e_delivery.harness import Bench, make_bench

DEADLINE_S = 10.0
"""Far above the watcher's latency (debounce 0.3 s, step 0.1 s), far below the safety walk."""


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Bench, Intake, threading.Event]]:
    """The bench's vault with a live watcher feeding a fresh intake, as the daemon wires it."""
    bench = make_bench(tmp_path)
    intake, wake = Intake(bench.ctx), threading.Event()
    watcher = VaultWatcher(bench.vault, wake, on_changes=intake.notice)
    watcher.start()
    intake.watching = watcher.alive
    intake.full_scan_s = 3600.0  # the safety walk cannot be what finds them
    try:
        yield bench, intake, wake
    finally:
        watcher.stop()


def _draft(folder: Path, fr_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{fr_id}.md"
    path.write_text(f"---\nid: {fr_id}\ntitle: Draft {fr_id}\nstatus: draft\n---\nLater.\n")
    return path


def _ticks_until(intake: Intake, wake: threading.Event, done: Callable[[], bool],
                 what: str) -> float:
    """Tick on each wake, as the loop does, until `done`; the seconds it took."""
    start = time.monotonic()
    while not done():
        left = DEADLINE_S - (time.monotonic() - start)
        assert left > 0, f"{what} not seen within {DEADLINE_S}s"
        if wake.wait(timeout=min(left, 0.5)):
            wake.clear()
            intake.tick()
    return time.monotonic() - start


def _where(intake: Intake, fr_id: str) -> Path | None:
    note = intake.index.by_id(fr_id)
    return note.path if note is not None else None


def test_a_moved_folder_s_notes_are_seen_at_their_new_paths_at_once(
    watched: tuple[Bench, Intake, threading.Event],
) -> None:
    bench, intake, wake = watched
    drafts = bench.vault / "10_features" / "02_drafts"
    _draft(drafts / "projects", "FR-31")
    _draft(drafts / "projects" / "deep", "FR-32")
    intake.tick()  # the start: the whole vault
    assert _where(intake, "FR-32") == drafts / "projects" / "deep" / "FR-32.md"
    notes = len(intake.index)  # with the sample note `opus init` writes

    (drafts / "archive").mkdir()
    (drafts / "projects").rename(drafts / "archive" / "projects")
    moved = drafts / "archive" / "projects"
    took = _ticks_until(intake, wake, lambda: _where(intake, "FR-32") == moved / "deep" /
                        "FR-32.md" and _where(intake, "FR-31") == moved / "FR-31.md",
                        "the notes at their new paths")
    print(f"moved folder seen after {took:.2f}s")
    assert len(intake.index) == notes  # not also at the old paths

    outside = bench.root / "elsewhere"
    moved.rename(outside)  # out of the vault: the notes are gone
    _ticks_until(intake, wake, lambda: len(intake.index) == notes - 2, "the notes gone")
    assert _where(intake, "FR-31") is None


def test_a_folder_moved_in_with_a_planned_note_makes_its_job(
    watched: tuple[Bench, Intake, threading.Event],
) -> None:
    bench, intake, wake = watched
    intake.tick()
    outside = bench.root / "incoming"
    bench.write_fr("FR-33").rename(_draft(outside, "FR-34").parent / "FR-33.md")
    (outside).rename(bench.vault / "10_features" / "03_planned" / "incoming")

    _ticks_until(intake, wake, lambda: [j.fr_id for j in bench.store.jobs()] == ["FR-33"],
                 "a job for the planned note moved in")
    note = intake.index.by_id("FR-34")
    assert note is not None and note.status is FRStatus.DRAFT
