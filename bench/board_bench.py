"""Figures for the boards over a long-lived registry; run `python3 bench/board_bench.py`.

Fills a SQLite registry (with `--postgres`, a private schema on the test PostgreSQL,
analysed as autovacuum would) with `--jobs` jobs (default 10,000: 60 % done, 10 %
failed, 10 % cancelled, 10 % in review, 10 % queued — copies of one real row, so the
fill takes seconds), then prints the CPU time (min / median over `--repeat`) of:

1. `board_snapshot` as the boards call it: the open jobs, and a window of ten on Done
   and on Failed with their counts;
2. the same board built from every job (what a board read before the windows);
3. one page of each ended lane (`latest_jobs` + `count_jobs`) at its start and its end,
   and `latest_jobs` of that page alone, in wall time (on PostgreSQL most of a read is
   the server's, which the bench's CPU time does not see);
4. `GET /` and `GET /api/v1/board` through the dashboard's ASGI app (no network).

Nothing here is asserted: tests prove behaviour, this measures it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text
from starlette.testclient import TestClient

from opus.board.lanes import ENDED_LANES, board_from, board_snapshot
from opus.clock import SystemClock
from opus.config import load_settings
from opus.dashboard.app import create_app
from opus.dashboard.listen import Listen
from opus.dashboard.server import build_context
from opus.domain import FeatureRequest, FRStatus, JobState
from opus.registry import open_store
from opus.registry.reader import open_reader
from opus.registry.tables import JOBS
from opus.seams import JobReader
from opus.status import status_report

ROOT = Path(__file__).resolve().parents[1]

STATES = ["done"] * 6 + ["failed", "cancelled", "awaiting_review", "queued"]


def fill(root: Path, jobs: int, url: str | None) -> Path:
    """A project whose registry (at `url`, default SQLite) holds `jobs` jobs, by copying
    one enqueued row."""
    root.mkdir(parents=True)
    database = f'[database]\nurl = "{url}"\n' if url else ""
    (root / "opus.toml").write_text(f'[daemon]\nstate_dir = ".opus"\n{database}')
    settings = load_settings(root / "opus.toml")
    store = open_store(settings.database_url)
    store.enqueue(FeatureRequest(id="FR-0", title="Feature 0", status=FRStatus.PLANNED,
                                 path=Path("/v/FR-0.md"), body="# FR-0\n\nBody.",
                                 content_hash="h0"), root)
    store.close()
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        template = dict(conn.execute(select(JOBS)).mappings().one())
        conn.execute(insert(JOBS), [
            {**template, "id": number + 1, "fr_id": f"FR-{number}",
             "title": f"Feature {number}", "content_hash": f"h{number}",
             "state": STATES[number % len(STATES)],
             "updated_at": template["updated_at"] + timedelta(seconds=number)}
            for number in range(1, jobs)])
        if url:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return root / "opus.toml"


@contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """None (the project's own SQLite file), or a private schema on the test PostgreSQL."""
    if not postgres:
        yield None
        return
    sys.path.insert(0, str(ROOT))
    from tests.registry.factory import private_pg_url

    with private_pg_url() as url:
        yield url


def cpu_ms(work: Callable[[], object], repeat: int, clock: Callable[[], float] = time.process_time,
           name: str = "CPU") -> str:
    times = []
    for _ in range(repeat):
        start = clock()
        work()
        times.append((clock() - start) * 1000)
    return f"{name} ms min {min(times):7.1f} median {statistics.median(times):7.1f}"


def wall_ms(work: Callable[[], object], repeat: int) -> str:
    return cpu_ms(work, repeat, time.perf_counter, "wall")


def lane_pages(reader: JobReader, repeat: int) -> None:
    """A page of each ended lane at its start and its end: with its count, and alone."""
    for lane, states in ENDED_LANES.items():
        for offset in (0, max(0, reader.count_jobs(states) - 10)):
            def page(offset: int = offset, states: tuple[JobState, ...] = states) -> object:
                return reader.latest_jobs(states, limit=10, offset=offset)

            def counted(page: Callable[[], object] = page,
                        states: tuple[JobState, ...] = states) -> object:
                return page(), reader.count_jobs(states)

            where = f"{lane.label} at offset {offset}"
            print(f"  a page of {where:<28} {cpu_ms(counted, repeat)}")
            print(f"    latest_jobs alone {'':<18} {wall_ms(page, repeat)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", action="store_true",
                        help="a private schema on the test PostgreSQL instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres) as url:
        settings = load_settings(fill(Path(tmp) / "p", args.jobs, url))
        reader = open_reader(settings.database_url, keep_open=True)  # as the dashboard's
        now = SystemClock().now()

        def every_job() -> object:
            jobs = reader.jobs()
            return board_from(status_report(reader, settings, now, jobs=jobs), jobs, now)

        print(f"boards over {args.jobs} jobs ({'PostgreSQL' if url else 'SQLite'}):")
        print(f"  board_snapshot, ten of each ended lane  "
              f"{cpu_ms(lambda: board_snapshot(reader, settings, now), args.repeat)}")
        print(f"  the board from every job              {cpu_ms(every_job, args.repeat)}")
        lane_pages(reader, args.repeat)
        web = TestClient(create_app(build_context(settings, {}, listen=Listen("127.0.0.1", 0))),
                         base_url="http://127.0.0.1")
        for path in ("/", "/api/v1/board"):
            web.get(path)
            print(f"  GET {path:<34} {cpu_ms(lambda path=path: web.get(path), args.repeat)}")
        reader.close()


if __name__ == "__main__":
    main()
