"""Figures for the boards over a long-lived registry; run `python3 bench/board_bench.py`.

Fills a SQLite registry with `--jobs` jobs (default 10,000: 60 % done, 10 % failed,
10 % cancelled, 10 % in review, 10 % queued — copies of one real row, so the fill takes
seconds), then prints the CPU time (min / median over `--repeat`) of:

1. `board_snapshot` as the boards call it: the open jobs, and a window of ten on Done
   and on Failed with their counts;
2. the same board built from every job (what a board read before the windows);
3. one page of an ended lane (`latest_jobs` + `count_jobs`) at the start and at the end;
4. `GET /` and `GET /api/v1/board` through the dashboard's ASGI app (no network).

Nothing here is asserted: tests prove behaviour, this measures it.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from opus.board.lanes import ENDED_LANES, Lane, board_from, board_snapshot
from opus.clock import SystemClock
from opus.config import load_settings
from opus.dashboard.app import create_app
from opus.dashboard.listen import Listen
from opus.dashboard.server import build_context
from opus.domain import FeatureRequest, FRStatus
from opus.registry import open_store
from opus.registry.reader import open_reader
from opus.status import status_report

STATES = ["done"] * 6 + ["failed", "cancelled", "awaiting_review", "queued"]


def fill(root: Path, jobs: int) -> Path:
    """A project whose registry holds `jobs` jobs, by copying one enqueued row."""
    root.mkdir(parents=True)
    (root / "opus.toml").write_text('[daemon]\nstate_dir = ".opus"\n')
    settings = load_settings(root / "opus.toml")
    store = open_store(settings.database_url)
    store.enqueue(FeatureRequest(id="FR-0", title="Feature 0", status=FRStatus.PLANNED,
                                 path=Path("/v/FR-0.md"), body="# FR-0\n\nBody.",
                                 content_hash="h0"), root)
    store.close()
    conn = sqlite3.connect(root / ".opus" / "opus.db")
    columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
    template = dict(zip(columns, conn.execute("SELECT * FROM jobs").fetchone(), strict=True))
    rows = []
    for number in range(1, jobs):
        row = {**template, "id": number + 1, "fr_id": f"FR-{number}",
               "title": f"Feature {number}", "content_hash": f"h{number}",
               "state": STATES[number % len(STATES)],
               "updated_at": f"2026-01-01 00:{number // 3600 % 60:02d}:{number % 60:02d}"}
        rows.append(tuple(row[name] for name in columns))
    marks = ",".join("?" * len(columns))
    conn.executemany(f"INSERT INTO jobs ({','.join(columns)}) VALUES ({marks})", rows)
    conn.commit()
    conn.close()
    return root / "opus.toml"


def cpu_ms(work: Callable[[], object], repeat: int) -> str:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return f"CPU ms min {min(times):7.1f} median {statistics.median(times):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(fill(Path(tmp) / "p", args.jobs))
        reader = open_reader(settings.database_url)
        now = SystemClock().now()

        def every_job() -> object:
            jobs = reader.jobs()
            return board_from(status_report(reader, settings, now, jobs=jobs), jobs, now)

        done = ENDED_LANES[Lane.DONE]
        last = max(0, reader.count_jobs(done) - 10)
        print(f"boards over {args.jobs} jobs (SQLite):")
        print(f"  board_snapshot, ten of each ended lane  "
              f"{cpu_ms(lambda: board_snapshot(reader, settings, now), args.repeat)}")
        print(f"  the board from every job              {cpu_ms(every_job, args.repeat)}")
        for offset in (0, last):
            def page(offset: int = offset) -> object:
                return reader.latest_jobs(done, limit=10, offset=offset), reader.count_jobs(done)
            print(f"  a page of Done at offset {offset:<6}        {cpu_ms(page, args.repeat)}")
        web = TestClient(create_app(build_context(settings, {}, listen=Listen("127.0.0.1", 0))),
                         base_url="http://127.0.0.1")
        for url in ("/", "/api/v1/board"):
            web.get(url)
            print(f"  GET {url:<34} {cpu_ms(lambda url=url: web.get(url), args.repeat)}")


if __name__ == "__main__":
    main()
