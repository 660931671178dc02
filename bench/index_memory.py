"""What the daemon's vault index costs per note: Python memory and walk times.

`python3 bench/index_memory.py --notes 10000,50000 --src A/src,B/src`

Per vault size it writes a vault shaped like a long-lived one (`lean.make_vault`: 60 %
done FRs, ideas, drafts, cancelled FRs, meeting notes) and, per checkout, runs child
processes (`PYTHONPATH=<src>`) that build a `VaultIndex` as intake does
(`finish_moves=True`) and walk the vault twice:

- Python memory held by the index after the walks (tracemalloc, 1 frame), in MB and in
  bytes per note;
- the resident size the process gained (VmRSS after the walks - before the index);
- the first walk (every note parsed), the second walk (an unchanged vault: a stat per
  note) and one note saved → `refresh` (min / median / max over `--repeat`);
- where the checkout has the parse cache (`VaultIndex(cache_file=...)`): writing it, and
  a new index's first walk from it (what a restart costs: load + a stat per note), with
  the file's size.

The vault's notes are left older than the parse cache's racy margin (2 s) before any
index reads them, as a long-lived vault's are.

Nothing is asserted; the figures are for comparing two versions on one machine.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTE = "---\nid: BENCH-{n}\ntitle: Bench\nstatus: draft\n---\nbody {n}\n"


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _build(root: Path, cache_file: Path | None = None) -> Any:
    from opus.vault.index import VaultIndex

    options: dict[str, Any] = {} if cache_file is None else {"cache_file": cache_file}
    return VaultIndex(root / "vault", default_repo=root / "repo", finish_moves=True, **options)


def _has_cache() -> bool:
    from opus.vault.index import VaultIndex

    return "cache_file" in inspect.signature(VaultIndex).parameters


def cached_starts(root: Path, repeat: int) -> dict[str, Any]:
    """Write the parse cache from a full walk; then new indexes' first walks from it."""
    cache = root / f"cache-{os.getpid()}.json"
    index = _build(root, cache)
    index.refresh_all()
    start = time.perf_counter()
    stored = index.save_cache()
    write = time.perf_counter() - start
    walks = []
    for _ in range(repeat):
        index = _build(root, cache)
        gc.collect()
        start = time.perf_counter()
        index.refresh_all()
        walks.append(time.perf_counter() - start)
    size = cache.stat().st_size
    cache.unlink()
    return {"cache_write_s": write, "cache_stored": stored, "cache_bytes": size,
            "cached_walk_s": walks, "cached_parsed": index.misses}


def child_memory(root: Path) -> dict[str, float]:
    import tracemalloc

    import opus.vault.index  # noqa: F401  (imports are not the index's cost)

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = _build(root)
    index.refresh_all()
    index.refresh_all()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    return {"python_bytes": held}


def child_time(root: Path, repeat: int) -> dict[str, Any]:
    import opus.vault.index  # noqa: F401

    gc.collect()
    rss0 = _rss_kb()
    index = _build(root)
    start = time.perf_counter()
    index.refresh_all()
    first = time.perf_counter() - start
    walks, saves = [], []
    for n in range(repeat):
        start = time.perf_counter()
        index.refresh_all()
        walks.append(time.perf_counter() - start)
        note = root / "vault" / "10_features" / "02_drafts" / f"BENCH-{n}.md"
        note.write_text(NOTE.format(n=n))
        start = time.perf_counter()
        index.refresh({note})
        saves.append(time.perf_counter() - start)
        note.unlink()
        index.refresh({note})
    gc.collect()
    figures = {"rss_kb": _rss_kb() - rss0, "first_walk_s": first, "walk_s": walks,
               "save_s": saves}
    if _has_cache():
        figures.update(cached_starts(root, repeat))
    return figures


def make_workspace(root: Path, notes: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import lean

    lean.make_vault(root / "vault", notes)
    subprocess.run(["git", "init", "-q", str(root / "repo")], check=True)
    time.sleep(2.5)  # older than the parse cache's racy margin, as a long-lived vault's notes


def run_child(src: str, mode: str, root: Path, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", str(root),
         "--repeat", str(repeat)],
        env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _spread(values: list[float]) -> str:
    return (f"{min(values) * 1e3:.1f} / {statistics.median(values) * 1e3:.1f} / "
            f"{max(values) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="10000,50000", help="vault sizes, comma-separated")
    parser.add_argument("--src", default=str(ROOT / "src"),
                        help="checkouts' src folders to measure, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="walks and saves per checkout")
    parser.add_argument("--child", choices=("memory", "time"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root = Path(args.root)
        out = child_memory(root) if args.child == "memory" else child_time(root, args.repeat)
        print(json.dumps(out))
        return
    for notes in (int(n) for n in args.notes.split(",")):
        with tempfile.TemporaryDirectory(prefix="opus-index-") as tmp:
            root = Path(tmp)
            make_workspace(root, notes)
            print(f"== {notes} notes (load average {os.getloadavg()[0]:.2f})")
            for number, src in enumerate(args.src.split(","), start=1):
                memory = run_child(src, "memory", root, args.repeat)
                timing = run_child(src, "time", root, args.repeat)
                held = memory["python_bytes"]
                print(f"[{number}] {src}\n"
                      f"    Python objects held: {held / 1e6:.1f} MB "
                      f"({held / notes:.0f} B/note); RSS gained: "
                      f"{timing['rss_kb'] / 1024:.1f} MB\n"
                      f"    first walk {timing['first_walk_s']:.2f} s; unchanged walk "
                      f"{_spread(timing['walk_s'])}; one note saved → refresh "
                      f"{_spread(timing['save_s'])}")
                if "cached_walk_s" in timing:
                    print(f"    parse cache: written in {timing['cache_write_s'] * 1e3:.0f} ms "
                          f"({timing['cache_stored']} notes, "
                          f"{timing['cache_bytes'] / 1e6:.1f} MB); a new index's first walk "
                          f"from it {_spread(timing['cached_walk_s'])} "
                          f"({timing['cached_parsed']} notes parsed)")


if __name__ == "__main__":
    main()
