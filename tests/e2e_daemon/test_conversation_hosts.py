"""More than one machine (SPEC §9): the worker records the questions in the registry, the
intake daemon writes the note and reads the answer, a worker resumes the job."""

from __future__ import annotations

import re

import pytest

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.e2e_daemon.test_conversation import AskingPlanner


@pytest.mark.postgres
def test_worker_asks_intake_writes_the_note_and_reads_the_answer(
    pg_ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    ws = pg_ws
    planner = AskingPlanner()
    agency.overrides[("FR-1", "planner")] = planner
    ws.write_config(vault={"path": "vault", "settle_s": 0.2})
    ws.write_fr("FR-1")
    daemons.start(ws, "--role", "intake")
    worker = daemons.start(ws, "--role", "worker")

    job = ws.wait_state("FR-1", JobState.WAITING_INPUT)
    assert job.spec["waiting"]["asked_by"] == "planner"
    note = ws.root / "vault" / "10_features" / "04_in_progress" / "Q-FR-1.md"
    wait_until(note.exists, "the note, written by the intake daemon")
    wait_until(lambda: ws.job("FR-1").spec["waiting"]["note"] == str(note),  # type: ignore[union-attr]
               "the note's path in the registry")
    assert "Q-FR-1" not in worker.output, "the worker writes no note"

    text = note.read_text().replace("**Answer:** \n", "**Answer:** Redis\n", 1)
    temp = note.with_name(".Q-FR-1.md.swp")
    temp.write_text(re.sub(r"^status: open$", "status: answered", text, flags=re.MULTILINE))
    temp.rename(note)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    assert "Redis" in planner.first_messages[1]
    claims = [e.message for e in ws.store.events(job.id) if e.kind == "claimed"]
    assert len(claims) == 2 and all(worker.proc.pid == int(m.split(":")[-2]) for m in claims)
