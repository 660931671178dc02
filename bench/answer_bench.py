"""Figures for the conversation in the vault (issue 14); run `python3 bench/answer_bench.py`.

One serving daemon (slow polls, so only file events explain a quick reaction) and, for
each of `--frs` FRs in turn, a planner that asks one question through `ask_human`:

1. question: the planner's request answered → the question note on disk (s);
2. resume: the answer saved in the note (an editor's rename) → the job claimed again (s);
3. agent: the answer saved → the planner's next first request reaches the model (s),
   which adds the job process start, worktree and preflight to (2).

Prints min / median / max; asserts nothing (tests prove behaviour, this measures it).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.e2e_daemon.agency import Agency, fr_of, scripted_reply, start_api  # noqa: E402
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until  # noqa: E402
from tests.standins.messages_api import reply, tool_use  # noqa: E402

from opus.domain import JobState  # noqa: E402

QUESTION = {"question": "Which store?", "options": ["Redis", "memory"], "recommendation": "Redis"}


class Planner:
    """Asks in its first conversation per FR, plans in the next; stamps each first request."""

    def __init__(self) -> None:
        self.firsts: dict[str, list[float]] = {}

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        fr = fr_of(body)
        if len(body["messages"]) == 1:
            self.firsts.setdefault(fr, []).append(time.monotonic())
        if len(self.firsts[fr]) == 1:
            self.asked_at = time.monotonic()
            return reply(tool_use("ask_human", {"questions": [QUESTION]}))
        return scripted_reply(fr, "planner", body)


def _answer(note: Path) -> None:
    text = note.read_text().replace("**Answer:** \n", "**Answer:** Redis\n", 1)
    temp = note.with_name(f".{note.name}.swp")
    temp.write_text(re.sub(r"^status: open$", "status: answered", text, flags=re.MULTILINE))
    temp.rename(note)


def _show(name: str, values: list[float]) -> None:
    print(f"{name:<44} {min(values):6.2f} / {statistics.median(values):6.2f} / "
          f"{max(values):6.2f}   (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frs", type=int, default=5)
    args = parser.parse_args()
    agency, planner = Agency(), Planner()
    api = start_api(agency)
    figures: dict[str, list[float]] = {"question": [], "resume": [], "agent": []}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        ws.write_config(daemon={"poll_active_s": 60, "poll_idle_s": 60},
                        vault={"path": "vault", "settle_s": 0.2})
        daemons = Daemons(api.base_url)
        try:
            daemons.start(ws)
            for n in range(1, args.frs + 1):
                fr = f"FR-{n}"
                agency.overrides[(fr, "planner")] = planner
                ws.write_fr(fr)
                note = ws.root / "vault" / "10_features" / "04_in_progress" / f"Q-{fr}.md"
                wait_until(note.exists, f"the question note of {fr}", 120)
                figures["question"].append(time.monotonic() - planner.asked_at)
                saved = time.monotonic()
                _answer(note)
                ws.wait_state(fr, JobState.RUNNING, JobState.AWAITING_REVIEW, timeout_s=60)
                figures["resume"].append(time.monotonic() - saved)
                wait_until(lambda fr=fr: len(planner.firsts[fr]) == 2, "the planner again", 60)
                figures["agent"].append(planner.firsts[fr][1] - saved)
                ws.wait_state(fr, JobState.AWAITING_REVIEW, timeout_s=120)
        finally:
            daemons.kill_all()
            api.close()
    print("figure (s)                                      min / median / max")
    _show("question asked → note on disk", figures["question"])
    _show("answer saved → job claimed", figures["resume"])
    _show("answer saved → planner's request", figures["agent"])


if __name__ == "__main__":
    main()
