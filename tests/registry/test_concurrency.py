"""Two OS processes on one registry: claims are atomic, writers never hit "locked"."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from opus.domain import JobState
from opus.registry import open_store
from tests.registry.factory import make_fr

ROOT = Path(__file__).resolve().parents[2]
JOBS = 240
DEADLINE_S = 60.0


def _stderr(procs: dict[str, subprocess.Popen[str]]) -> str:
    return "; ".join(f"{w}: {p.communicate(timeout=5)[1][-2000:]}" for w, p in procs.items())


def _race(mode: str, url: str, tmp_path: Path, workers: tuple[str, ...]) -> dict[str, list[int]]:
    """Start one contender per worker, release them together, return each one's ids."""
    go = tmp_path / "go"
    procs = {}
    for worker in workers:
        args = [mode, url, worker, str(tmp_path / f"{worker}.ready"), str(go),
                str(tmp_path / f"{worker}.out")]
        procs[worker] = subprocess.Popen(
            [sys.executable, "-m", "tests.registry.contender", *args],
            cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )
    deadline = time.monotonic() + DEADLINE_S
    while not all((tmp_path / f"{w}.ready").exists() for w in workers):
        assert time.monotonic() < deadline, "contenders did not start"
        dead = {w: p for w, p in procs.items() if p.poll() is not None}
        assert not dead, f"a contender died early: {_stderr(dead)}"
        time.sleep(0.02)
    go.touch()
    for worker, proc in procs.items():
        _, err = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, f"{worker} failed:\n{err}"
    return {
        w: [int(x) for x in (tmp_path / f"{w}.out").read_text().split()] for w in workers
    }


def _claim_race(url: str, tmp_path: Path) -> None:
    store = open_store(url)
    expected = {store.enqueue(make_fr(f"FR-{n:04d}"), Path("/repo")).id for n in range(JOBS)}
    got = _race("claim", url, tmp_path, ("alpha", "beta"))
    counts = Counter(got["alpha"] + got["beta"])
    assert [i for i, c in counts.items() if c > 1] == [], "a job was claimed twice"
    assert set(counts) == expected, "a job was lost"
    # Both processes really competed (each got a share), and every job is held once.
    assert got["alpha"] and got["beta"]
    holders = {j.id: j.worker for j in store.jobs([JobState.RUNNING])}
    assert holders == {i: w for w, ids in got.items() for i in ids}
    store.close()


def test_two_processes_claim_each_job_once_on_sqlite(tmp_path: Path) -> None:
    _claim_race(f"sqlite:///{tmp_path / 'opus.db'}", tmp_path)


@pytest.mark.postgres
def test_two_processes_claim_each_job_once_on_postgres(
    tmp_path: Path, pg_schema_url: str
) -> None:
    _claim_race(pg_schema_url, tmp_path)


def _write_race(url: str, tmp_path: Path) -> None:
    got = _race("write", url, tmp_path, ("w1", "w2"))
    store = open_store(url)
    made = got["w1"] + got["w2"]
    assert len(made) == len(set(made)) == 2 * 60
    assert {j.id for j in store.jobs([JobState.CANCELLED])} == set(made)
    assert len(store.events()) == 2 * 60
    assert all(len(store.stage_runs(i)) == 1 for i in made)
    assert store.get_flag("last-writer") in {"w1", "w2"}
    store.close()


def test_concurrent_read_then_write_never_hits_a_locked_sqlite(tmp_path: Path) -> None:
    _write_race(f"sqlite:///{tmp_path / 'opus.db'}", tmp_path)


@pytest.mark.postgres
def test_concurrent_writers_on_postgres(tmp_path: Path, pg_schema_url: str) -> None:
    _write_race(pg_schema_url, tmp_path)


def _intake_race(url: str, tmp_path: Path) -> None:
    got = _race("intake", url, tmp_path, ("i1", "i2"))
    assert got["i1"] == got["i2"], "the same note got two different jobs"
    store = open_store(url)
    assert len(store.jobs()) == 60
    store.close()


def test_two_intakes_of_one_note_make_one_job_on_sqlite(tmp_path: Path) -> None:
    _intake_race(f"sqlite:///{tmp_path / 'opus.db'}", tmp_path)


@pytest.mark.postgres
def test_two_intakes_of_one_note_make_one_job_on_postgres(
    tmp_path: Path, pg_schema_url: str
) -> None:
    _intake_race(pg_schema_url, tmp_path)
