"""The long chaos run of issue 16; run `python3 bench/chaos.py [--kills 30] [--runs 1]`.

Per backend (SQLite with one daemon, PostgreSQL with two), `--runs` times: `--frs` FRs,
a real git repo with a bare remote, `opus run` daemons as subprocesses behind the scripted
agency, and `--kills` SIGKILLs of a random daemon (every third one while its `git
worktree add/remove` holds its lock), each followed by a restart. Prints per run the
kills, the time until every FR was awaiting review, the per-kill recovery (seconds until
the registry next recorded progress) and what the audit found (tests/e2e_daemon/chaos.py).
Nothing here is asserted: tests/e2e_daemon/test_chaos.py proves it, this measures it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.e2e_daemon.agency import Agency, start_api  # noqa: E402
from tests.e2e_daemon.chaos import Chaos, settled_audit  # noqa: E402
from tests.e2e_daemon.harness import Daemons, Workspace  # noqa: E402
from tests.registry.factory import drop_pg_schema, new_pg_schema, pg_url  # noqa: E402


def one_run(backend: str, kills: int, deadline_s: float, seed: int, fr_count: int) -> str:
    frs = [f"FR-{n}" for n in range(1, fr_count + 1)]
    api = start_api(Agency())
    daemons = Daemons(api.base_url)
    schema = new_pg_schema() if backend == "postgres" else None
    if backend == "postgres" and schema is None:
        api.close()
        return "postgres: skipped (127.0.0.1:5432 unreachable)"
    try:
        with tempfile.TemporaryDirectory(prefix="opus-chaos-") as tmp:
            url = pg_url(schema) if schema else None
            ws = Workspace(Path(tmp), database_url=url)
            count = 2 if schema else 1
            chaos = Chaos(ws, daemons, frs, count, kills=kills, deadline_s=deadline_s, seed=seed)
            report = chaos.run()
            problems = settled_audit(ws, frs)
            rec = report.recoveries_s or [0.0]
            daemons.kill_all()
            return (
                f"{backend} ({count} daemon{'s' if count > 1 else ''}) seed {seed}: "
                f"{report.kills} kills ({report.git_kills} inside git worktree), "
                f"converged={report.converged} in {report.converge_s:.1f}s, "
                f"recovery ({len(report.recoveries_s)} measured) median "
                f"{statistics.median(rec):.1f}s max {max(rec):.1f}s, {fr_count} FRs, "
                f"problems: {problems or 0}"
            )
    finally:
        daemons.kill_all()
        api.close()
        if schema:
            drop_pg_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--frs", type=int, default=12)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for run in range(args.runs):
        for backend in backends:
            print(one_run(backend, args.kills, args.deadline, run, args.frs), flush=True)


if __name__ == "__main__":
    main()
