"""Intake against a real vault and registry: settling, never looping, mirroring jobs,
recording the notes opus cannot use, and leaving every other note alone."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import event

from opus.control import set_paused
from opus.daemon.intake import Intake
from opus.domain import JobState
from opus.vault.problems import read_problems
from opus.vault.text import load_frontmatter, split_note
from tests.e2e_delivery.harness import Bench, make_bench


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return make_bench(tmp_path)


def _meta(path: Path) -> dict[str, object]:
    meta = load_frontmatter(split_note(path.read_text(encoding="utf-8")))
    assert isinstance(meta, dict)
    return meta


def _planned(bench: Bench) -> Path:
    return bench.vault / "10_features" / "03_planned"


def _age(path: Path, seconds: float = 60) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_note_that_cannot_be_written_back_makes_one_job_not_one_per_tick(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    note = _planned(bench) / "FR-1.md"
    # Valid YAML, but a flow mapping: opus cannot edit it line by line.
    text = "---\n{id: FR-1, title: Add greeting, status: planned}\n---\nSay hi.\n"
    note.write_text(text)
    caplog.set_level(logging.INFO, logger="opus")
    bench.intake.tick()
    jobs = bench.store.jobs()
    assert len(jobs) == 1 and note.read_text() == text
    bench.store.transition(jobs[0].id, JobState.FAILED, error="tests failed")
    for _ in range(5):
        bench.intake.tick()
    assert [(j.id, j.state) for j in bench.store.jobs()] == [(jobs[0].id, JobState.FAILED)]
    failures = [r for r in caplog.records if "could not update" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # once, not per tick
    assert note.read_text() == text

    note.write_text(text.replace("Say hi.", "Say hello."))  # new content: a new job
    bench.intake.tick()
    assert len(bench.store.jobs()) == 2


def test_replanning_a_failed_note_reruns_it_once(bench: Bench) -> None:
    bench.write_fr()
    job = bench.enqueue()
    bench.store.transition(job.id, JobState.FAILED, error="boom")
    bench.intake.tick()
    path, meta = bench.note()
    assert meta["status"] == "failed"
    for _ in range(3):
        bench.intake.tick()
    assert bench.store.get(job.id).state is JobState.FAILED  # a failed note stays failed
    path.write_text(path.read_text().replace("status: failed", "status: planned"))
    bench.intake.tick()
    again = bench.store.get(job.id)
    assert again.state is JobState.QUEUED and len(bench.store.jobs()) == 1
    assert bench.note()[1]["status"] == "in-progress"


def test_a_changed_note_waits_until_it_settles(bench: Bench) -> None:
    intake = Intake(bench.ctx, settle=True)
    for old in bench.vault.rglob("*.md"):
        _age(old)  # init's example note was written just now
    note = bench.write_fr()
    report = intake.tick()
    assert report.settling == 1 and bench.store.jobs() == []
    assert intake.due_in_s is not None and 0 < intake.due_in_s <= 2
    _age(note)
    report = intake.tick()
    assert report.settling == 0 and len(bench.store.jobs()) == 1


def test_notes_mirror_jobs(bench: Bench) -> None:
    bench.write_fr()
    job = bench.enqueue()
    path, meta = bench.note()
    assert (path.parent.name, meta["status"], meta["stage"]) == ("04_in_progress", "in-progress",
                                                                  "queued")
    set_paused(bench.store, True)
    bench.intake.tick()
    assert bench.note()[1]["stage"] == "waiting: paused"
    set_paused(bench.store, False)
    bench.intake.claim_blocker = lambda _job: "daily budget"  # what the loop says
    bench.intake.tick()
    assert bench.note()[1]["stage"] == "waiting: daily budget"
    bench.intake.claim_blocker = None
    bench.intake.tick()
    assert bench.note()[1]["stage"] == "queued"
    report = "no passing round after 3 iteration(s); last report:\n" + "x " * 50 + (
        "\ntest_greet — AssertionError: 'Hi' != 'Hello'")
    bench.store.transition(job.id, JobState.FAILED, error=report)
    bench.intake.tick()
    path, meta = bench.note()
    assert (path.parent.name, meta["status"]) == ("07_failed", "failed")
    error = str(meta["error"])
    assert "AssertionError: 'Hi' != 'Hello'" in error and "opus logs FR-1" in error
    assert "\n" not in error and len(error) < 400


def test_a_move_never_overwrites_or_copies(bench: Bench) -> None:
    taken = bench.vault / "10_features" / "04_in_progress" / "FR-1.md"
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_text("someone's own note\n")
    note = bench.write_fr()
    bench.enqueue()
    assert note.is_file() and taken.read_text() == "someone's own note\n"
    assert sorted(p.name for p in taken.parent.iterdir()) == [".gitkeep", "FR-1.md"]
    meta = _meta(note)
    assert meta["status"] == "in-progress"
    assert "not moved to 10_features/04_in_progress/FR-1.md" in str(meta["error"])


def test_duplicate_ids_neither_runs_and_both_say_so(bench: Bench) -> None:
    one = bench.write_fr()
    two = one.with_name("FR-1 copy.md")
    two.write_text(one.read_text())
    bench.intake.tick()
    assert bench.store.jobs() == []
    for path, other in ((one, "FR-1 copy.md"), (two, "FR-1.md")):
        meta = _meta(path)
        assert meta["status"] == "invalid" and other in str(meta["error"])
        assert path.parent == _planned(bench)  # invalid notes are never moved
    problems = read_problems(bench.ctx.settings.state_dir)
    assert [p.path for p in problems] == ["10_features/03_planned/FR-1 copy.md",
                                          "10_features/03_planned/FR-1.md"]


def test_problems_are_recorded_and_other_notes_left_alone(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _planned(bench)
    others = {
        "garden.md": b"---\nstatus: seedling\ntags: [a]\n---\nGrowing.\n",
        "rule.md": b"---\n\nA note that opens with a rule.\n",
        "plain.md": b"no frontmatter at all\n",
    }
    for name, data in others.items():
        (folder / name).write_bytes(data)
    (folder / "FR-7.md").write_bytes(b"---\nid: FR-7\nstatus: planned\n")  # unclosed
    (folder / "latin.md").write_bytes(b"---\nid: FR-8\ntitle: x\nstatus: planned\n---\ncaf\xe9\n")
    caplog.set_level(logging.INFO, logger="opus")
    for _ in range(3):
        bench.intake.tick()
    for name, data in others.items():
        assert (folder / name).read_bytes() == data
    assert (folder / "FR-7.md").read_bytes() == b"---\nid: FR-7\nstatus: planned\n"
    latin = (folder / "latin.md").read_bytes()
    assert latin.endswith(b"---\ncaf\xe9\n") and b"status: invalid" in latin
    problems = {p.path: p.reason for p in read_problems(bench.ctx.settings.state_dir)}
    assert set(problems) == {"10_features/03_planned/FR-7.md", "10_features/03_planned/latin.md"}
    assert "never closed" in problems["10_features/03_planned/FR-7.md"]
    assert "not valid UTF-8" in problems["10_features/03_planned/latin.md"]
    warned = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert any("FR-7.md" in w for w in warned) and any("latin.md" in w for w in warned)
    caplog.clear()
    for _ in range(3):
        bench.intake.tick()
    assert not [r for r in caplog.records if "cannot be used" in r.getMessage()]  # not per tick
    assert bench.store.jobs() == []


def _warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]


def test_a_restart_does_not_log_again_a_problem_reported_for_the_same_note(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _planned(bench)
    untitled = folder / "FR-5.md"  # opus writes `status: invalid` into it
    untitled.write_bytes(b"---\nid: FR-5\nstatus: planned\n---\nNo title.\n")
    unclosed = folder / "FR-6.md"  # never rewritten
    unclosed.write_bytes(b"---\nid: FR-6\ntitle: Six\nstatus: planned\n")
    caplog.set_level(logging.INFO, logger="opus")
    for _ in range(2):  # the second tick re-reads the note opus flagged
        bench.intake.tick()
    assert b"status: invalid" in untitled.read_bytes()
    assert len(_warned(caplog)) == 2, _warned(caplog)

    caplog.clear()
    restarted = Intake(bench.ctx)  # a new daemon over the same vault and state dir
    for _ in range(2):
        restarted.tick()
    assert _warned(caplog) == []
    assert len(read_problems(bench.ctx.settings.state_dir)) == 2

    unclosed.write_bytes(unclosed.read_bytes() + b"still no closing line\n")  # edited meanwhile
    again = Intake(bench.ctx)
    again.tick()
    (warned,) = _warned(caplog)
    assert "FR-6.md" in warned and "never closed" in warned

    unclosed.unlink()  # fixed by removing it: a later note at that path is news again
    again.tick()
    assert len(read_problems(bench.ctx.settings.state_dir)) == 1
    unclosed.write_bytes(b"---\nid: FR-6\ntitle: Six\nstatus: planned\n")
    caplog.clear()
    Intake(bench.ctx).tick()
    assert ["FR-6.md" in w for w in _warned(caplog)] == [True]


def test_with_a_watcher_only_changed_paths_are_read_and_a_safety_scan_finds_the_rest(
    bench: Bench,
) -> None:
    intake = Intake(bench.ctx)
    intake.watching = lambda: True
    intake.tick()  # the first tick walks the whole vault
    misses = intake.index.misses
    note = bench.write_fr("FR-1")
    missed = bench.write_fr("FR-2")  # a change the watcher never reports
    intake.notice({note})
    intake.tick()
    assert [j.fr_id for j in bench.store.jobs()] == ["FR-1"]
    assert intake.index.misses - misses <= 3  # FR-1, then its write-back and move
    intake.full_scan_s = 0  # the safety rescan is due
    intake.tick()
    assert sorted(j.fr_id for j in bench.store.jobs()) == ["FR-1", "FR-2"]
    assert missed.exists() or bench.note("FR-2")


class _Statements:
    """Counts the SQL statements the registry runs (a real SQLite file underneath)."""

    def __init__(self, bench: Bench) -> None:
        self.seen: list[str] = []
        event.listen(bench.store._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith("BEGIN"):
            self.seen.append(" ".join(statement.split())[:80])

    @property
    def count(self) -> int:
        return len(self.seen)


def _old_vault(bench: Bench, notes: int) -> None:
    done = bench.vault / "10_features" / "06_done"
    done.mkdir(parents=True, exist_ok=True)
    for n in range(notes):
        (done / f"OLD-{n}.md").write_text(
            f"---\nid: OLD-{n}\ntitle: Old {n}\nstatus: done\njob: {n + 1}\n---\nDone.\n")


@pytest.mark.parametrize("notes", [50, 400])
def test_with_a_watcher_a_tick_costs_the_change_not_the_vault(bench: Bench, notes: int) -> None:
    _old_vault(bench, notes)
    intake = bench.intake
    intake.watching = lambda: True
    intake.tick()  # the first tick walks the whole vault
    statements = _Statements(bench)
    misses, checked = intake.index.misses, intake.index.checked

    intake.tick()  # idle: nothing noticed
    idle = statements.count
    assert (intake.index.misses, intake.index.checked) == (misses, checked)

    note = bench.write_fr("FR-1", extra="depends_on: [OLD-3]\n")
    intake.notice({note})
    intake.tick()
    assert [j.fr_id for j in bench.store.jobs()] == ["FR-1"]
    # FR-1 read, then read again after its write-back moved it: nothing else, whatever
    # the vault's size; the same number of statements for 50 and 400 old notes.
    assert intake.index.misses - misses <= 3
    assert intake.index.checked - checked <= 3
    # Idle: "jobs changed since?", "paused?", "jobs waiting for a person?"; the change
    # adds enqueueing and mirroring FR-1.
    assert (idle, statements.count - idle) == (3, 8), statements.seen


def test_with_a_watcher_a_job_change_reaches_its_note_without_a_note_event(
    bench: Bench,
) -> None:
    intake = bench.intake
    intake.watching = lambda: True
    note = bench.write_fr()
    job = bench.enqueue()
    set_paused(bench.store, True)  # a command changes only the registry
    intake.tick()
    assert bench.note()[1]["stage"] == "waiting: paused"
    set_paused(bench.store, False)
    bench.store.transition(job.id, JobState.FAILED, error="tests failed")
    intake.tick()
    path, meta = bench.note()
    assert (path.parent.name, meta["status"]) == ("07_failed", "failed")
    assert not note.exists()


def test_a_move_cut_short_by_a_stop_is_finished_after_a_restart(bench: Bench) -> None:
    """A daemon stopped between writing `status: review` and moving the note left it in
    04_in_progress; the next daemon moves it, and leaves a note in a folder of the
    user's own where it is."""
    bench.write_fr()
    job = bench.enqueue()
    claimed = bench.store.claim("worker-1", 60)
    assert claimed is not None and claimed.id == job.id
    bench.store.transition(job.id, JobState.AWAITING_REVIEW)
    bench.intake.tick()
    features = bench.vault / "10_features"
    review = features / "05_review" / "FR-1.md"
    assert bench.note() == (review, {**bench.note()[1], "status": "review"})

    cut_short = features / "04_in_progress" / "FR-1.md"
    review.rename(cut_short)  # as the stop left it: the new status, the old folder
    _age(cut_short)
    Intake(bench.ctx).tick()
    path, meta = bench.note()
    assert (path, meta["status"], meta["job"]) == (review, "review", job.id)

    own = features / "projects" / "FR-1.md"
    own.parent.mkdir()
    review.rename(own)
    _age(own)
    before = own.read_bytes()
    Intake(bench.ctx).tick()
    assert own.read_bytes() == before and not review.exists()
