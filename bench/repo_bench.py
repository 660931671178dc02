"""What worktree setup and the baseline cost before a job spends a token; run
`python3 bench/repo_bench.py` from the repository root.

For a small src-layout Python package (a venv with an editable install and a generated
`_version.py`) and a small npm package (`npm ci` of a local dependency), each in a
fresh job worktree under the real sandbox: the first setup, the setup check on the
next round (cached), the proof that the tests see the worktree, and the baseline test
run. Prints one line per figure; nothing is asserted (tests prove behaviour).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.conftest import make_repo  # noqa: E402
from tests.e2e_pipeline import real_repos as rr  # noqa: E402

from opus.config import SandboxConfig  # noqa: E402
from opus.pipeline.tester import TreeView, command_for, repo_setting, run_tests  # noqa: E402
from opus.pipeline.workenv import (  # noqa: E402
    detect_setup,
    ensure_setup,
    env_prefix,
    exclude_generated,
)
from opus.pipeline.worktree import Worktree  # noqa: E402
from opus.pipeline.worktree_proof import check_python  # noqa: E402
from opus.sandbox import bwrap_available, sandbox_for  # noqa: E402
from opus.seams import Sandbox  # noqa: E402


def timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def one_job(
    sandbox: Sandbox, repo: Path, state: Path, job: int, module: str | None
) -> dict[str, float]:
    wt = Worktree.ensure(repo, state, job, f"opus/bench-{job}", "main", remote="origin")
    view = TreeView(repo, "main")
    setup = repo_setting(view, "setup") or detect_setup(view)
    command = command_for(None, view) or "true"
    exclude_generated(wt.path)
    figures: dict[str, float] = {}
    if setup:
        figures["setup (first)"], outcome = timed(
            lambda: ensure_setup(sandbox, wt.path, setup, timeout_s=600, tail_bytes=4000)
        )
        assert getattr(outcome, "ok", False), outcome
        figures["setup (cached)"], _ = timed(
            lambda: ensure_setup(sandbox, wt.path, setup, timeout_s=600, tail_bytes=4000)
        )
    if module:
        figures["proof"], _ = timed(lambda: check_python(sandbox, wt.path, module))
    figures["baseline"], test = timed(
        lambda: run_tests(sandbox, wt.path, command, timeout_s=600, tail_bytes=4000,
                          env_prefix=env_prefix(wt.path))
    )
    assert getattr(test, "passed", False), getattr(test, "output_tail", "")
    wt.remove()
    return figures


def bench(name: str, files: dict[str, str], module: str | None, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"opus-bench-{name}-", dir="/var/tmp"))
    try:
        repo = make_repo(root / "repo", files)
        kind = "bwrap" if bwrap_available() else "none"
        sandbox = sandbox_for(SandboxConfig(kind=kind, network=True), state_dir=root / "state")
        samples: dict[str, list[float]] = {}
        for job in range(1, runs + 1):
            for key, value in one_job(sandbox, repo, root / "state", job, module).items():
                samples.setdefault(key, []).append(value)
        for key, values in samples.items():
            print(f"{name:7} {key:15} median {statistics.median(values):6.2f} s  "
                  f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs, {kind})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh worktrees per project")
    args = parser.parse_args()
    bench("python", rr.PYTHON_FILES, "greeting_kit", args.runs)
    bench("npm", rr.NPM_FILES, None, args.runs)


if __name__ == "__main__":
    main()
