"""Figures for the web board (issue 15); run `python3 bench/dashboard_bench.py`.

1. Server time of the board with `--jobs` jobs (default 1,000) in a SQLite registry:
   `GET /`, `GET /fragments/board` (what a live update fetches) and `GET /api/v1/board`,
   in-process through the ASGI app (no network), min / median / max of `--repeat`, and
   the CPU time the process spent on each (what the wall time would be on an idle
   machine: on a loaded one the wall time mostly measures the wait for a core).
   The goal is under 150 ms.
2. The idle CPU of `opus run` without and with `dashboard.listen` (no browser open), from
   `/proc/PID/stat` (utime + stime) over `--idle-s` seconds after a settling pause,
   alternating the two so the machine's load hits both alike; and the same daemon with one
   browser-like client holding the event stream open.

Nothing here is asserted: tests prove behaviour, this measures it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from opus.config import load_settings
from opus.dashboard.app import create_app
from opus.dashboard.listen import Listen
from opus.dashboard.server import build_context
from opus.domain import FeatureRequest, FRStatus, JobState, Stage, StageRun, Usage
from opus.registry import open_store

CLK_TCK = os.sysconf("SC_CLK_TCK")
STATES = [JobState.DONE] * 6 + [JobState.FAILED, JobState.AWAITING_REVIEW, JobState.QUEUED,
                                JobState.CANCELLED]


def _fr(number: int) -> FeatureRequest:
    fr_id = f"FR-{number}"
    return FeatureRequest(id=fr_id, title=f"Feature number {number}", status=FRStatus.PLANNED,
                          path=Path(f"/v/{fr_id}.md"), body=f"# {fr_id}\n\nBody.",
                          content_hash=f"h{number}")


def fill(root: Path, jobs: int) -> Path:
    """A project whose registry holds `jobs` jobs in a realistic mix, with stage runs."""
    root.mkdir(parents=True)
    (root / "opus.toml").write_text('[daemon]\nstate_dir = ".opus"\n')
    store = open_store(load_settings(root / "opus.toml").database_url)
    for number in range(1, jobs + 1):
        job = store.enqueue(_fr(number), root)
        state = STATES[number % len(STATES)]
        if state is JobState.QUEUED:
            continue
        store.claim("bench", lease_s=3600)
        for stage in (Stage.PLAN, Stage.CODE, Stage.TEST, Stage.REVIEW):
            store.record_stage(StageRun(job_id=job.id, stage=stage, iteration=1, ok=True,
                                        output={}, usage=Usage(10, 10, 10, 10), cost_usd=0.01))
        if state is JobState.DONE:
            store.transition(job.id, JobState.AWAITING_REVIEW)
        store.transition(job.id, state)
    store.close()
    return root


def board_times(root: Path, repeat: int) -> None:
    settings = load_settings(root / "opus.toml")
    ctx = build_context(settings, {}, listen=Listen("127.0.0.1", 0))
    web = TestClient(create_app(ctx), base_url="http://127.0.0.1")
    for url in ("/", "/fragments/board", "/api/v1/board"):
        web.get(url)  # warm: templates compiled, connections opened
        wall, cpu = [], []
        for _ in range(repeat):
            started, used = time.perf_counter(), time.process_time()
            assert web.get(url).status_code == 200
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
        print(f"  GET {url:<18} wall ms min {min(wall):6.1f} median "
              f"{statistics.median(wall):6.1f} max {max(wall):6.1f} | CPU ms median "
              f"{statistics.median(cpu):6.1f}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def idle_cpu(root: Path, *, board: bool, listener: bool, settle_s: float, idle_s: float) -> float:
    """% of a core `opus run` used over `idle_s` of idleness."""
    port = _free_port()
    listen = f'[dashboard]\nlisten = "127.0.0.1:{port}"\n' if board else ""
    (root / "opus.toml").write_text(f'[daemon]\nstate_dir = ".opus"\n[sandbox]\nkind = "none"\n'
                                    f"{listen}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
    proc = subprocess.Popen([sys.executable, "-m", "opus", "--config", str(root / "opus.toml"),
                             "run"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    stop = threading.Event()
    try:
        time.sleep(settle_s)
        if listener:
            threading.Thread(target=_listen, args=(port, stop), daemon=True).start()
            time.sleep(1.0)
        before = _cpu_s(proc.pid)
        time.sleep(idle_s)
        return (_cpu_s(proc.pid) - before) / idle_s * 100
    finally:
        stop.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _listen(port: int, stop: threading.Event) -> None:
    """Hold the event stream open, as a browser on the board does."""
    try:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/stream", timeout=None) as r:
            for _line in r.iter_lines():
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--settle-s", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3, help="idle CPU runs of each kind")
    parser.add_argument("--board-only", action="store_true", help="skip the idle CPU runs")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="opus-bench-") as tmp:
        started = time.perf_counter()
        root = fill(Path(tmp) / "big", args.jobs)
        print(f"board server time with {args.jobs} jobs (registry filled in "
              f"{time.perf_counter() - started:.1f}s):")
        board_times(root, args.repeat)
        if args.board_only:
            return
        print(f"daemon idle CPU, % of a core over {args.idle_s:.0f}s:")
        kinds = {"without dashboard": (False, False), "with dashboard": (True, False),
                 "with dashboard, one stream open": (True, True)}
        figures: dict[str, list[float]] = {kind: [] for kind in kinds}
        for number in range(args.rounds):
            for kind, (board, listener) in kinds.items():
                project = Path(tmp) / f"idle-{number}-{len(figures[kind])}-{board}{listener}"
                project.mkdir()
                figures[kind].append(idle_cpu(project, board=board, listener=listener,
                                              settle_s=args.settle_s, idle_s=args.idle_s))
        for kind, values in figures.items():
            print(f"  {kind:<32} min {min(values):5.2f}  median "
                  f"{statistics.median(values):5.2f}  max {max(values):5.2f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
