"""A separate OS process that races another one on the same registry.

    python -m tests.registry.contender MODE URL WORKER READY GO OUT

MODE is claim, intake or write. Every mode opens the store, touches READY and waits
for GO (so both processes start at the same moment); then `claim` claims until nothing
is left, `intake` enqueues the same notes as the other process, and `write` enqueues,
checkpoints and logs many jobs (read-then-write transactions). Each writes the job ids
it got to OUT. Every wait is bounded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from opus.domain import JobState, Stage, StageRun
from opus.registry import Registry, open_store
from tests.registry.factory import make_fr

WRITES = 60
WAIT_S = 30.0


def claim_all(store: Registry, worker: str) -> list[int]:
    claimed: list[int] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = store.claim(worker, 600)
        if job is None:
            break
        claimed.append(job.id)
    return claimed


def write_many(store: Registry, worker: str) -> list[int]:
    made: list[int] = []
    for n in range(WRITES):
        job = store.enqueue(make_fr(f"FR-{worker}-{n}", f"body {n}"), Path("/repo"))
        store.record_stage(StageRun(job.id, Stage.PLAN, 0, True, {"n": n}, cost_usd=0.01))
        store.add_event(job.id, "planned", f"{worker} {n}")
        store.transition(job.id, JobState.CANCELLED, error="test")
        store.set_flag("last-writer", worker)
        made.append(job.id)
    return made


def intake_same(store: Registry, worker: str) -> list[int]:
    """Enqueue the same notes the other intake process enqueues."""
    return [
        store.enqueue(make_fr(f"FR-{n}", "shared body"), Path("/repo")).id
        for n in range(WRITES)
    ]


def main(argv: list[str]) -> int:
    mode, url, worker, ready, go, out = argv
    store = open_store(url)
    Path(ready).touch()
    deadline = time.monotonic() + WAIT_S
    while not Path(go).exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.01)
    actions = {"claim": claim_all, "write": write_many, "intake": intake_same}
    ids = actions[mode](store, worker)
    Path(out).write_text("\n".join(map(str, ids)))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
