"""The conversation in the vault, end to end with real daemons (designs/conversation.md).

The planner (scripted behind the Messages-API stand-in, driven by the real `anthropic`
engine) calls `ask_human`; the daemon writes `Q-FR-1.md` next to the FR, marks the FR
`stage: needs-input` with a link to it, notifies, and spends nothing. The answer is saved
into the note as an editor saves; the job resumes at `plan` with the answer in the
planner's first message, and the PR keeps the question and the answer. A SIGKILL while it
waits changes nothing: one note, the same bytes, still waiting.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import frontmatter

from opus.domain import JobState
from tests.conversation.design_notes import RATE_LIMITING
from tests.e2e_daemon.agency import Agency, fr_of, scripted_reply
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink
from tests.standins.messages_api import MessagesAPI, reply, text, tool_use

SLOW_POLL = {"poll_active_s": 60, "poll_idle_s": 60}
LIMIT_S = 1.0 + 3.0
"""SPEC's one second from a save to the resumed job, plus a margin for a busy machine."""
QUESTION = {
    "question": "Which store holds the counters?",
    "options": ["Redis", "in-process memory"],
    "recommendation": "Redis",
}
PROGRESS = "04_in_progress"


def _first_text(body: dict[str, Any]) -> str:
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else "".join(b.get("text", "") for b in first)


class AskingPlanner:
    """Asks once (its first conversation), then plans; keeps every first message."""

    def __init__(self) -> None:
        self.first_messages: list[str] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        if len(body["messages"]) == 1:
            self.first_messages.append(_first_text(body))
        if len(self.first_messages) == 1:
            return reply(text("This is the person's call."),
                         tool_use("ask_human", {"questions": [QUESTION]}))
        return scripted_reply(fr_of(body), "planner", body)


def _answer_in_note(note: Path, answer: str) -> None:
    """Fill the answer and set `status: answered`, saved the way an editor saves."""
    body = note.read_text()
    body = body.replace("**Answer:** \n", f"**Answer:** {answer}\n", 1)
    body = re.sub(r"^status: open$", "status: answered", body, count=1, flags=re.MULTILINE)
    temp = note.with_name(f".{note.name}.swp")
    temp.write_text(body)
    temp.rename(note)


def _setup(ws: Workspace, agency: Agency, sink: Sink) -> AskingPlanner:
    planner = AskingPlanner()
    agency.overrides[("FR-1", "planner")] = planner
    ws.write_config(daemon=SLOW_POLL, vault={"path": "vault", "settle_s": 0.2},
                    notify={"urls": [sink.url]})
    ws.write_fr("FR-1")
    return planner


def test_question_asked_answered_in_the_note_and_kept_in_the_pr(
    ws: Workspace, daemons: Daemons, agency: Agency, api: MessagesAPI, sink: Sink
) -> None:
    planner = _setup(ws, agency, sink)
    first = daemons.start(ws)
    ws.wait_state("FR-1", JobState.WAITING_INPUT)
    features = ws.root / "vault" / "10_features"
    question = features / PROGRESS / "Q-FR-1.md"
    wait_until(question.exists, "the question note")
    written = question.read_bytes()
    assert "## 1. Which store holds the counters?" in written.decode()
    assert "Recommendation: Redis" in written.decode()
    fr_note = features / PROGRESS / "FR-1.md"
    wait_until(lambda: frontmatter.loads(fr_note.read_text()).get("stage") == "needs-input",
               "the FR's stage")
    meta = frontmatter.loads(fr_note.read_text()).metadata
    assert "needs" not in meta, "opus writes only SPEC §1's keys"
    assert "[[FR-1]]" in written.decode(), "the question note links its FR"
    assert meta["status"] == "in-progress"
    wait_until(lambda: any("FR-1 needs your answer" in str(m.get("title")) for m in sink.received),
               "the notification")
    code, shown = ws.cli("status")
    assert code == 0 and "needs you" in shown and "Q-FR-1.md" in shown, shown

    # SIGKILL while it waits: after a restart, the same single note, still waiting.
    asked = len(api.bodies)
    first.stop(signal.SIGKILL)
    daemons.start(ws)
    wait_until(lambda: "serving" in daemons.started[-1].output, "the restarted daemon")
    time.sleep(1.0)
    assert ws.job("FR-1").state is JobState.WAITING_INPUT  # type: ignore[union-attr]
    assert question.read_bytes() == written
    assert sorted(p.name for p in features.rglob("Q-*.md")) == ["Q-FR-1.md"]
    assert len(api.bodies) == asked, "nothing is spent while waiting"

    started = time.monotonic()
    _answer_in_note(question, "Redis, with a 60 s TTL")
    ws.wait_state("FR-1", JobState.RUNNING, JobState.AWAITING_REVIEW, timeout_s=30)
    elapsed = time.monotonic() - started
    print(f"answer saved → job claimed again: {elapsed:.2f}s")
    assert elapsed < LIMIT_S, f"resuming took {elapsed:.2f}s"
    wait_until(lambda: len(planner.first_messages) == 2, "the planner to run again", 30)
    assert "Redis, with a 60 s TTL" in planner.first_messages[1]
    assert "Which store holds the counters?" in planner.first_messages[1]

    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    assert job.pr_url is not None
    pr_note = Path(job.pr_url).read_text()
    assert "## Questions and answers" in pr_note and "Redis, with a 60 s TTL" in pr_note
    in_review = features / "05_review" / "FR-1.md"
    wait_until(in_review.exists, "the FR note in review")
    assert frontmatter.loads(in_review.read_text())["status"] == "review"


def _design_note_fr(ws: Workspace, *extra: str) -> None:
    """FR-1 written like a design note: three open questions, two undecided."""
    front = ["id: FR-1", "title: Rate limiting", "status: planned",
             "test_command: grep -q FR-1 fr-1.txt", *extra]
    note = ws.root / "vault" / "10_features" / "03_planned" / "FR-1.md"
    note.write_text("---\n" + "\n".join(front) + "\n---\n" + RATE_LIMITING)


class RecordingPlanner:
    """Plans at once; keeps every first message."""

    def __init__(self) -> None:
        self.first_messages: list[str] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        if len(body["messages"]) == 1:
            self.first_messages.append(_first_text(body))
        return scripted_reply(fr_of(body), "planner", body)


def test_undecided_questions_wait_before_planning_and_opus_answer_resumes(
    ws: Workspace, daemons: Daemons, agency: Agency, api: MessagesAPI
) -> None:
    planner = RecordingPlanner()
    agency.overrides[("FR-1", "planner")] = planner
    ws.write_config(daemon=SLOW_POLL, vault={"path": "vault", "settle_s": 0.2})
    _design_note_fr(ws)
    daemons.start(ws)
    ws.wait_state("FR-1", JobState.WAITING_INPUT)
    question = ws.root / "vault" / "10_features" / PROGRESS / "Q-FR-1.md"
    wait_until(question.exists, "the question note")
    text = question.read_text()
    assert "## 1. Which store holds the counters?" in text
    assert "## 2. Which status code for a limited request?" in text
    assert "Per user or per API key" not in text  # decided in the FR
    time.sleep(0.5)
    assert api.bodies == [], "no model request before the answers"

    code, out = ws.cli("answer", "FR-1", "--text", "Redis")
    assert code == 2 and "question 2 (Which status code for a limited request?)" in out, out
    code, out = ws.cli("answer", "FR-1", "--text", "Redis", "--text", "429, Retry-After")
    assert code == 0, out
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    (first,) = planner.first_messages
    assert "Which store holds the counters?" in first and "429, Retry-After" in first
    assert "status: answered" in question.read_text()
    assert "**Answer:** Redis" in question.read_text()
    assert "429, Retry-After" in Path(job.pr_url or "").read_text()
    fr_note = ws.root / "vault" / "10_features" / "05_review" / "FR-1.md"
    wait_until(fr_note.exists, "the FR note in review")
    assert fr_note.read_text().split("---\n", 2)[2] == RATE_LIMITING, "the body is the user's"


def test_recommend_plans_with_the_recommendations_as_assumptions(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    planner = RecordingPlanner()
    agency.overrides[("FR-1", "planner")] = planner
    ws.write_config(daemon=SLOW_POLL, vault={"path": "vault", "settle_s": 0.2})
    _design_note_fr(ws, "open_questions: recommend")
    daemons.start(ws)
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    assert not any(e.kind == "waiting_input" for e in ws.store.events(job.id))
    (first,) = planner.first_messages
    assert "## Assumptions" in first and "Option A, since production runs four workers." in first
    pr = Path(job.pr_url or "").read_text()
    assert "## Assumptions" in pr
    assert "Which status code for a limited request? → 429 with a Retry-After header" in pr


def _decide(note: Path, decision: str, comments: str = "") -> None:
    text = re.sub(r"^decision:.*$", f"decision: {decision}", note.read_text(), count=1,
                  flags=re.MULTILINE)
    temp = note.with_name(f".{note.name}.swp")
    temp.write_text(text + (comments + "\n" if comments else ""))
    temp.rename(note)


def test_plan_changes_replan_with_the_comments_then_approve_delivers(
    ws: Workspace, daemons: Daemons, agency: Agency
) -> None:
    planner = RecordingPlanner()
    agency.overrides[("FR-1", "planner")] = planner
    ws.write_config(daemon=SLOW_POLL, vault={"path": "vault", "settle_s": 0.2},
                    pipeline={"approve_plan": "always"})
    ws.write_fr("FR-1")
    daemons.start(ws)
    plan = ws.root / "vault" / "10_features" / PROGRESS / "PLAN-FR-1.md"
    wait_until(plan.exists, "the plan note")
    assert ws.job("FR-1").state is JobState.WAITING_INPUT  # type: ignore[union-attr]
    assert "## Steps" in plan.read_text() and "- `fr-1.txt`" in plan.read_text()

    _decide(plan, "changes", "Also write a second line with the date.")
    wait_until(lambda: len(planner.first_messages) == 2, "the re-plan", 30)
    assert "Also write a second line with the date." in planner.first_messages[1]
    wait_until(lambda: "revision: 2" in plan.read_text(), "the revised plan note", 30)
    assert ws.job("FR-1").state is JobState.WAITING_INPUT  # type: ignore[union-attr]

    _decide(plan, "approve")
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    assert job.iteration == 1, "a re-plan is not a code round"
    assert ws.completed_stages("FR-1") == ["plan", "plan", "code", "test", "review", "deliver"]


FILL = r"""
import pathlib, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text()
path.write_text(text.replace("**Answer:** \n", "**Answer:** Redis, from the editor\n", 1))
"""


def test_opus_answer_opens_the_editor_and_a_deleted_note_cancels(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink
) -> None:
    planner = _setup(ws, agency, sink)
    ws.write_fr("FR-2")
    agency.overrides[("FR-2", "planner")] = AskingPlanner()
    daemons.start(ws)
    progress = ws.root / "vault" / "10_features" / PROGRESS
    for fr_id in ("FR-1", "FR-2"):
        wait_until((progress / f"Q-{fr_id}.md").exists, f"the question note of {fr_id}")

    editor = ws.root / "fill.py"
    editor.write_text(FILL)
    code, out = ws.cli("answer", "FR-1", env={"EDITOR": f"python3 {editor}"})
    assert code == 0 and "resumes where it asked" in out, out
    wait_until(lambda: len(planner.first_messages) == 2, "the planner to run again", 30)
    assert "Redis, from the editor" in planner.first_messages[1]

    (progress / "Q-FR-2.md").unlink()
    job = ws.wait_state("FR-2", JobState.CANCELLED)
    assert "Q-FR-2.md" in (job.error or "") and "deleted" in (job.error or "")
    wait_until(lambda: any("FR-2 cancelled" in str(m.get("title")) for m in sink.received),
               "the cancellation notice")
    fr_note = progress.parent / "07_failed" / "FR-2.md"
    wait_until(fr_note.exists, "the FR note among the ended")
    assert frontmatter.loads(fr_note.read_text())["status"] == "cancelled"
    code, out = ws.cli("answer", "FR-2", "--text", "too late")
    assert code == 2 and "cancelled" in out, out
