"""`opus run --once` with an FR whose body leaves questions open: it asks (the note is
written before it exits), spends nothing, exits 0; the next `--once` after the answer
delivers, with the answers in the planner's first message."""

from __future__ import annotations

import re

from opus.domain import JobState
from tests.conversation.design_notes import RATE_LIMITING
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import daemon
from tests.e2e_pipeline.harness import FR_ID, Project, write_fr
from tests.standins.messages_api import MessagesAPI


def test_once_asks_exits_and_the_next_once_delivers(api: MessagesAPI, project: Project) -> None:
    daemon.write_config(project)
    note = write_fr(project)
    note.write_text(note.read_text().replace(note.read_text().split("---\n", 2)[2], RATE_LIMITING))

    log = daemon.run_once(project, api, "first.log")
    assert "needs your input" in log, log
    assert api.bodies == []
    question = project.vault / "10_features" / "04_in_progress" / f"Q-{FR_ID}.md"
    text = question.read_text()
    for answer in ("Redis", "429"):
        text = text.replace("**Answer:** \n", f"**Answer:** {answer}\n", 1)
    question.write_text(re.sub(r"^status: open$", "status: answered", text, flags=re.M))

    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    daemon.run_once(project, api, "second.log")
    store = daemon.registry(project)
    (job,) = store.jobs()
    assert job.state is JobState.AWAITING_REVIEW, job.error
    (first,) = talk.first_messages(api, "planner")
    assert "Which store holds the counters?" in first and "**A:** 429" in first
    store.close()
