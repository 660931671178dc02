"""Figures for `opus status` (issue 12's wall-time goal); run `python3 bench/status_bench.py`.

1. Wall time of `python -m opus status` in a project with N jobs (default 200), a real
   subprocess each time: min / median / max over `--runs` runs.
2. Where the time goes: one `python -X importtime -m opus status`, with the cumulative
   import time of the heavy dependencies (pydantic-settings, SQLAlchemy, SQLModel, the
   vault package) and of opus's own modules.
3. What must not be imported by `status` (engines, forge clients, apprise, secret
   scanning), as found in `sys.modules` after a status run.

Prints figures; asserts nothing (tests prove behaviour, this measures it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = (
    "pydantic", "pydantic_settings", "opus.config", "sqlalchemy", "sqlmodel",
    "opus.registry.reader", "sqlite3", "opus.vault", "yaml", "opus.presence", "opus.status",
)
FORBIDDEN = ("anthropic", "httpx", "apprise", "detect_secrets", "opus.engines",
             "opus.forges.github", "opus.forges.gitea", "opus.notify", "watchfiles")
MODULES_PROBE = (
    "import json, sys\n"
    "from opus.cli import main\n"
    "code = main(['status'])\n"
    "sys.stdout.flush()\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _project(root: Path, jobs: int) -> Path:
    subprocess.run([sys.executable, "-m", "opus", "init", str(root / "p")], env=_env(),
                   check=True, capture_output=True)
    project = root / "p"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from opus.domain import FeatureRequest, FRStatus
    from opus.registry import open_store

    store = open_store(f"sqlite:///{project / '.opus' / 'opus.db'}")
    for index in range(jobs):
        fr_id = f"FR-{index + 1}"
        fr = FeatureRequest(id=fr_id, title=f"Benchmark {fr_id}", status=FRStatus.PLANNED,
                            path=project / "vault" / f"{fr_id}.md", body="b",
                            content_hash=f"h{index}")
        store.enqueue(fr, project)
    store.close()
    return project


def wall_times(project: Path, runs: int) -> list[float]:
    figures = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "opus", "status"], cwd=project, env=_env(),
                       check=True, capture_output=True)
        figures.append(time.perf_counter() - started)
    return figures


def import_times(project: Path) -> dict[str, float]:
    """Cumulative import time (s) per module of one `python -X importtime` status run."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "opus", "status"],
                            cwd=project, env=_env(), check=True, capture_output=True, text=True)
    found: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and match[3] not in found:
            found[match[3]] = int(match[1]) / 1e6
    return found


def imported_modules(project: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", MODULES_PROBE], cwd=project, env=_env(),
                            check=True, capture_output=True, text=True)
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="opus-status-bench-") as tmp:
        project = _project(Path(tmp), args.jobs)
        figures = wall_times(project, args.runs)
        print(f"opus status wall time, {args.jobs} jobs, {args.runs} runs: "
              f"min {min(figures):.3f} s / median {statistics.median(figures):.3f} s / "
              f"max {max(figures):.3f} s  (goal <= 0.25 s)")
        python = wall_times_of([sys.executable, "-c", "pass"], args.runs)
        print(f"python -c pass (interpreter start): median {statistics.median(python):.3f} s; "
              f"status minus start: {statistics.median(figures) - statistics.median(python):.3f} s")
        times = import_times(project)
        print("cumulative import time in one status run:")
        for name in HEAVY:
            if name in times:
                print(f"  {name:32} {times[name]:.3f} s")
        print(f"  {'opus.cli (everything)':32} {times.get('opus.cli', 0):.3f} s")
        modules = imported_modules(project)
        bad = [m for m in modules if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN
               or any(m.startswith(f + ".") for f in FORBIDDEN)]
        print(f"modules loaded by status: {len(modules)}; forbidden among them: "
              f"{', '.join(bad) or 'none'}")


def wall_times_of(argv: list[str], runs: int) -> list[float]:
    figures = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=_env(), check=True, capture_output=True)
        figures.append(time.perf_counter() - started)
    return figures


if __name__ == "__main__":
    main()
