"""Every registry read of the boards and `opus status`, timed and explained, over a
registry a year old; run `python3 bench/lane_bench.py`.

For each `--jobs` size (default 10,000 and 100,000) and each database (a SQLite file;
a private schema on the test PostgreSQL at 127.0.0.1:5432, database `test`, dropped
afterwards), it fills a registry the way a daemon running day and night leaves it, then
calls each read the boards and `opus status` make through the driver-only reader
(`opus.registry.reader`, as `opus top`, `opus top --url`'s dashboard and `opus status`
do), and prints:

- the wall time of the call, min / median over `--repeat` (a kept connection on
  PostgreSQL, as the dashboard's, so the figure is the query's, not a connect's);
- each statement the call ran, with its plan: `EXPLAIN QUERY PLAN` on SQLite, and on
  PostgreSQL `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)`, whose `rows=` say how much of
  the table a step read.

The statements are caught at the reader's one query method (`_rows`), so the same
script measures any version of opus: run it with `PYTHONPATH=<other checkout>/src` for
the figures before a change. The registry's tables and indexes are made by that
version's `open_store`, as that version would find them; with `--keep DIR` the
registries stay (`DIR/opus-N.db`, PostgreSQL schema `lane_bench_N`: drop it after) and
the next run, of either version, reads the same rows instead of filling its own (the
version that opens them adds any index it lacks, as on an upgrade).

The registry, per size N: 40 open jobs (20 queued, 2 running, 3 waiting for a person,
15 in review) and N - 40 ended ones — 75 % done, 15 % failed, 10 % cancelled — created
one after another over a year; an ended job last changed minutes to hours after it was
created (done: a day or so later, when its PR merged), so the lanes' order by change is
close to, but not, the order of ids. Each job carries a spec with a body of 1.5 kB and
two checkpoints, as real ones do. PostgreSQL is vacuumed and analysed as autovacuum would
have; SQLite is left as opus leaves it (never analysed) unless `--analyse`.

Nothing is asserted: tests prove behaviour, this measures it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPEN = {"queued": 20, "running": 2, "waiting_input": 3, "awaiting_review": 15}
ENDED = (("done", 0.75), ("failed", 0.15), ("cancelled", 0.10))
YEAR = timedelta(days=365)
BODY = ("Add a rate limit to the public API: 100 requests a minute per token, "
        "429 with Retry-After past it. ") * 15  # ~1.5 kB, an FR's body


def rows(total: int, now: datetime, seed: int = 1) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
    """The jobs and their checkpoints, ids 1..total in creation order."""
    rnd = random.Random(seed)
    ended = total - sum(OPEN.values())
    states = [_ended_state(rnd.random()) for _ in range(ended)]
    states += [state for state, n in OPEN.items() for _ in range(n)]
    start = now - YEAR
    jobs, runs = [], []
    for number, state in enumerate(states, start=1):
        created = start + YEAR * (number / total) - timedelta(hours=2)
        took = timedelta(minutes=rnd.expovariate(1 / 40))
        if state == "done":
            took += timedelta(hours=rnd.expovariate(1 / 24))
        updated = min(created + took, now) if state in dict(ENDED) else created
        jobs.append({
            "id": number, "fr_id": f"FR-{number}", "title": f"Feature {number}: rate limits",
            "state": state, "priority": "medium", "priority_rank": 2,
            "content_hash": f"{number:064x}", "fr_path": f"/vault/10_features/FR-{number}.md",
            "repo": f"/srv/repos/r{number % 5}", "base": "main",
            "created_at": created, "updated_at": updated,
            "stage": None if state == "queued" else "review", "iteration": 1,
            "branch": f"opus/FR-{number}", "pr_url": f"https://forge/pr/{number}"
            if state in ("done", "awaiting_review") else None,
            "error": "test stage: 3 failing tests after 3 iterations\n" * 3
            if state == "failed" else None,
            "cost_usd": 0.42, "worker": "host:1:w0" if state == "running" else None,
            "lease_until": now + timedelta(minutes=5) if state == "running" else None,
            "started_at": created, "finished_at": updated if state in dict(ENDED) else None,
            "spec": json.dumps({"body": BODY, "test_command": "pytest -q",
                                "allowed_paths": ["src/**"], "budget_usd": 5}),
        })
        for stage, at in (("plan", created + took / 3), ("code", created + took / 2)):
            runs.append({"job_id": number, "stage": stage, "iteration": 1, "ok": True,
                         "output": '{"summary": "ok"}', "cost_usd": 0.21,
                         "started_at": at, "finished_at": at})
    return jobs, runs


def _ended_state(draw: float) -> str:
    for state, share in ENDED:
        if draw < share:
            return state
        draw -= share
    return ENDED[-1][0]


def fill(url: str, total: int, now: datetime, *, analyse: bool) -> None:
    from sqlalchemy import create_engine, insert, text

    from opus.registry import open_store
    from opus.registry.tables import JOBS, STAGE_RUNS

    open_store(url).close()  # the tables and indexes this version of opus makes
    jobs, runs = rows(total, now)
    engine = create_engine(url)
    with engine.begin() as conn:
        for table, values in ((JOBS, jobs), (STAGE_RUNS, runs)):
            for at in range(0, len(values), 5000):
                conn.execute(insert(table), values[at:at + 5000])
        if url.startswith("postgresql"):
            conn.execute(text("SELECT setval('jobs_id_seq', :n)"), {"n": total})
    if url.startswith("postgresql"):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
            conn.execute(text("VACUUM ANALYZE stage_runs"))
    elif analyse:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


@contextmanager
def registry(backend: str, tmp: Path, total: int, keep: Path | None) -> Iterator[tuple[str, bool]]:
    """A registry's URL, and whether it is already filled: a fresh SQLite file or private
    schema on the test server, or with `keep` one kept for the next run (`DIR/opus-N.db`,
    schema `lane_bench_N`), so two versions of opus are measured on the same rows."""
    if backend == "sqlite":
        path = (keep or tmp) / f"opus-{total}.db"
        yield f"sqlite:///{path}", path.exists()
        return
    sys.path.insert(0, str(ROOT))
    from tests.registry.factory import PG_CONNINFO, drop_pg_schema, new_pg_schema, pg_url

    if keep is not None:
        import psycopg

        schema = f"lane_bench_{total}"
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                 [schema]).fetchone()
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        yield pg_url(schema), found is not None
        return
    made = new_pg_schema()
    if made is None:
        raise SystemExit("PostgreSQL at 127.0.0.1:5432 (database test) is unreachable")
    try:
        yield pg_url(made), False
    finally:
        drop_pg_schema(made)


class Recorder:
    """Catches the statements a reader runs (its `_rows(sql, params)`), once each."""

    def __init__(self, reader: Any) -> None:
        self.statements: list[tuple[str, list[Any]]] = []
        self.on = False
        inner = reader._rows

        def rows(sql: str, params: Any) -> Any:
            if self.on:
                self.statements.append((sql, list(params)))
            return inner(sql, params)

        reader._rows = rows

    def catch(self, call: Callable[[], object]) -> list[tuple[str, list[Any]]]:
        self.statements, self.on = [], True
        try:
            call()
        finally:
            self.on = False
        return self.statements


def plan(url: str, sql: str, params: list[Any]) -> tuple[list[str], int]:
    """The statement's plan, and the work it did, which the load of a shared machine does
    not move: SQLite's virtual machine steps, PostgreSQL's buffers (8 kB pages) touched."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        steps = [0]

        def step() -> int:
            steps[0] += 100
            return 0

        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            found = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            conn.set_progress_handler(step, 100)
            conn.execute(sql, params).fetchall()
        return _sqlite_tree(found), steps[0]
    import psycopg

    conninfo = "postgresql:" + url.split(":", 1)[1]
    with psycopg.connect(conninfo) as conn:
        lines = [str(row[0]) for row in conn.execute(
            f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params)]
    top = next((line for line in lines if "Buffers:" in line), "")
    return lines, sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top))


def _sqlite_tree(found: list[tuple[Any, ...]]) -> list[str]:
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in found:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + str(detail))
    return lines


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Min and median ms over `repeat` calls (fewer for a slow call: `opus status` over
    100,000 jobs takes seconds)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < 3000:
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def calls(reader: Any, settings: Any, now: datetime) -> dict[str, Callable[[], object]]:
    """Each read of a board and of `opus status`, by what it is for."""
    from opus.board.lanes import ENDED_LANES, Lane, board_snapshot
    from opus.domain import JobState
    from opus.status import day_start, status_report

    ended = {state for states in ENDED_LANES.values() for state in states}
    found: dict[str, Callable[[], object]] = {
        "open jobs (board)": lambda: reader.jobs([s for s in JobState if s not in ended]),
    }
    for lane in (Lane.DONE, Lane.FAILED):
        states = ENDED_LANES[lane]
        total = reader.count_jobs(states)
        for offset in (0, 1000, max(0, total - 10)):
            found[f"{lane.label} page at {offset:,}"] = (
                lambda states=states, offset=offset:
                reader.latest_jobs(states, limit=10, offset=offset))
        found[f"{lane.label} count ({total:,})"] = (
            lambda states=states: reader.count_jobs(states))
    found |= {
        "daemons": reader.daemons,
        "paused flag": lambda: reader.get_flag("paused"),
        "spent today": lambda: reader.cost_since(day_start(now)),
        "change mark (web board, every 0.3 s)": reader.change_mark,
        "every job (opus status)": reader.jobs,
        "= board_snapshot, whole": lambda: board_snapshot(reader, settings, now),
        "= status_report, whole": lambda: status_report(reader, settings, now),
    }
    return found


def measure(backend: str, total: int, args: argparse.Namespace) -> None:
    from opus.lightconfig import LightSettings
    from opus.registry.reader import open_reader

    now = datetime.now(UTC)
    with (tempfile.TemporaryDirectory() as tmp,
          registry(backend, Path(tmp), total, args.keep) as (url, made)):
        start = time.perf_counter()
        if not made:
            fill(url, total, now, analyse=args.analyse)
        filled = time.perf_counter() - start
        (Path(tmp) / "state").mkdir()
        settings = LightSettings(database_url=url, database_url_set=True, config_path=None,
                                 state_dir=Path(tmp) / "state",
                                 daily_usd=50.0, poll_idle_s=30.0, engine="anthropic",
                                 vault_path=Path(tmp), base_dir=Path(tmp))
        reader = open_reader(url, keep_open=True)
        recorder = Recorder(reader)
        how = "kept from a run before" if made else f"filled in {filled:.1f} s"
        print(f"\n## {backend}, {total:,} jobs ({how})\n")
        skipped = [word for word in args.skip.split(",") if word]
        for name, call in calls(reader, settings, now).items():
            if any(word in name for word in skipped):
                continue
            if not name.startswith(("every", "=")):
                call()  # warm: the first read of a kept connection connects
            low, median = timed(call, args.repeat)
            line = f"{name:<40} wall ms min {low:8.2f} median {median:8.2f}"
            if name.startswith(("every", "=")):
                print(line)
                continue
            plans = [(sql, params, *plan(url, sql, params)) for sql, params in recorder.catch(call)]
            unit = "VM steps" if backend == "sqlite" else "buffers"
            print(f"{line}  {unit} {sum(work for *_, work in plans):>9,}")
            for sql, params, lines, _ in plans if args.plans else ():
                print(f"    {sql}  {params}")
                print(*(f"      {line}" for line in lines), sep="\n")
        reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="10000,100000",
                        help="registry sizes, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--analyse", action="store_true", help="ANALYZE the SQLite file too")
    parser.add_argument("--no-plans", dest="plans", action="store_false")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the registries (SQLite files in this folder, PostgreSQL "
                        "schemas lane_bench_N) and reuse them on the next run")
    parser.add_argument("--skip", default="",
                        help="leave out the reads whose name holds one of these words")
    args = parser.parse_args()
    import opus

    print(f"opus from {Path(opus.__file__).parent}")
    for total in (int(n) for n in args.jobs.split(",")):
        for backend in args.backends.split(","):
            measure(backend, total, args)


if __name__ == "__main__":
    main()
