"""The intake side of a conversation on a real vault folder and a real (SQLite) registry:
notes out, answers and decisions in, bad input told in the note, deletion cancels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import frontmatter
import pytest

from opus.config import DaemonConfig, Settings, VaultConfig
from opus.conversation.questions import Question
from opus.conversation.sync import ConversationSync
from opus.conversation.waiting import Waiting, conversation_of, start_waiting, waiting_of
from opus.domain import FeatureRequest, FRStatus, Job, JobState, Stage, StageRun
from opus.pipeline.context import PipelineContext
from opus.testing.clock import FakeClock
from opus.testing.notifier import RecordingNotifier
from opus.testing.store import memory_store

QUESTIONS = (
    Question("Which store holds the counters?", ("Redis", "memory"), "Redis"),
    Question("Which status code?", (), "429"),
)


@dataclass
class World:
    ctx: PipelineContext
    clock: FakeClock
    notifier: RecordingNotifier
    fr_path: Path
    sync: ConversationSync

    def job(self) -> Job:
        found = self.ctx.store.latest_for_fr("FR-12")
        assert found is not None
        return found

    def tick(self) -> int:
        return self.sync.tick({"FR-12": self.fr_path})


@pytest.fixture
def world(tmp_path: Path) -> World:
    folder = tmp_path / "vault" / "10_features" / "04_in_progress"
    folder.mkdir(parents=True)
    fr_path = folder / "FR-12.md"
    fr_path.write_text("---\nid: FR-12\ntitle: Rate limits\nstatus: in-progress\n---\nBody\n")
    settings = Settings(vault=VaultConfig(path=tmp_path / "vault"),
                        daemon=DaemonConfig(state_dir=tmp_path / ".opus"), base_dir=tmp_path)
    clock, notifier = FakeClock(), RecordingNotifier()
    store = memory_store(clock)
    ctx = PipelineContext(settings=settings, store=store, engine=None,  # type: ignore[arg-type]
                          sandbox=None, notifier=notifier, clock=clock,  # type: ignore[arg-type]
                          forge_for=lambda _job: None)  # type: ignore[arg-type,return-value]
    fr = FeatureRequest(id="FR-12", title="Rate limits", status=FRStatus.PLANNED, path=fr_path,
                        body="Body", content_hash="h1", repo=tmp_path)
    store.enqueue(fr, tmp_path)
    claimed = store.claim("w", 60)
    assert claimed is not None
    return World(ctx, clock, notifier, fr_path, ConversationSync(ctx))


def _wait(world: World, kind: str = "questions", questions: tuple[Question, ...] = QUESTIONS,
          iteration: int = 0, round_: int = 1) -> None:
    waiting = Waiting(kind="plan" if kind == "plan" else "questions", asked_by="planner",
                      stage="plan", iteration=iteration, round=round_,
                      since=world.clock.now().isoformat(), questions=questions)
    start_waiting(world.ctx.store, world.job(), waiting)


def _save(note: Path, text: str) -> None:
    temp = note.with_name(f".{note.name}.swp")
    temp.write_text(text)
    temp.rename(note)


def _answer(note: Path, *answers: str, status: str = "answered") -> None:
    text = note.read_text()
    for answer in answers:
        text = text.replace("**Answer:** \n", f"**Answer:** {answer}\n", 1)
    _save(note, re.sub(r"^status: open$", f"status: {status}", text, flags=re.MULTILINE))


def test_note_written_once_answers_checked_then_resumed(world: World) -> None:
    _wait(world)
    world.tick()
    note = world.fr_path.parent / "Q-FR-12.md"
    text = note.read_text()
    assert "## 1. Which store holds the counters?" in text and "- Redis" in text
    assert "Recommendation: 429" in text
    assert waiting_of(world.job()).note == str(note)  # type: ignore[union-attr]
    assert [title for _k, title, _b in world.notifier.sent] == ["opus: FR-12 needs your answer"]
    world.tick()
    assert note.read_text() == text and len(world.notifier.sent) == 1

    _answer(note, "Redis")
    world.tick()
    meta = frontmatter.loads(note.read_text()).metadata
    assert world.job().state is JobState.WAITING_INPUT
    assert "question 2 (Which status code?)" in str(meta["error"])

    _answer(note, "429 with Retry-After")
    assert world.tick() == 1
    job = world.job()
    assert job.state is JobState.QUEUED and "waiting" not in job.spec
    (done,) = conversation_of(job)
    assert done.answers == ("Redis", "429 with Retry-After")
    assert "error" not in frontmatter.loads(note.read_text()).metadata


def test_a_note_left_by_a_crash_is_adopted_not_written_again(world: World) -> None:
    _wait(world)
    world.tick()
    note = world.fr_path.parent / "Q-FR-12.md"
    before = note.read_bytes()
    # The intake died after writing the note but before recording its path.
    job = world.job()
    spec = {**job.spec, "waiting": {**job.spec["waiting"], "note": None}}
    world.ctx.store.update(job.id, spec=spec)
    fresh = ConversationSync(world.ctx)
    fresh.tick({"FR-12": world.fr_path})
    assert note.read_bytes() == before
    assert sorted(p.name for p in note.parent.iterdir()) == ["FR-12.md", "Q-FR-12.md"]
    assert waiting_of(world.job()).note == str(note)  # type: ignore[union-attr]


def test_a_foreign_note_of_that_name_is_never_overwritten(world: World) -> None:
    note = world.fr_path.parent / "Q-FR-12.md"
    note.write_text("my own notes\n")
    _wait(world)
    world.tick()
    assert note.read_text() == "my own notes\n"
    assert waiting_of(world.job()).note is None  # type: ignore[union-attr]


def test_deleting_the_note_cancels_with_a_notification(world: World) -> None:
    _wait(world)
    world.tick()
    (world.fr_path.parent / "Q-FR-12.md").unlink()
    world.tick()
    job = world.job()
    assert job.state is JobState.CANCELLED and "deleted" in (job.error or "")
    assert world.notifier.kinds()[-1] == "failed"


def test_one_reminder_after_remind_after_h(world: World) -> None:
    _wait(world)
    world.tick()
    world.clock.advance(23 * 3600)
    world.tick()
    assert len(world.notifier.sent) == 1
    world.clock.advance(2 * 3600)
    world.tick()
    world.tick()
    assert len(world.notifier.sent) == 2 and "Reminder" in world.notifier.sent[1][2]


def _plan_wait(world: World) -> Path:
    job = world.job()
    plan = {"summary": "Token bucket in `src/limits.py`.",
            "steps": [{"title": "Add src/limits.py",
                       "postcondition": "pytest tests/test_limits.py"}]}
    world.ctx.store.record_stage(StageRun(job.id, Stage.PLAN, 0, True, plan, cost_usd=0.05))
    _wait(world, "plan", (), iteration=0, round_=1)
    world.tick()
    return world.fr_path.parent / "PLAN-FR-12.md"


def test_plan_note_unknown_decision_then_changes(world: World) -> None:
    note = _plan_wait(world)
    text = note.read_text()
    assert "Done when: pytest tests/test_limits.py" in text
    assert "- `src/limits.py`" in text and "$0.05" in text
    assert world.notifier.sent[-1][1] == "opus: plan for FR-12 awaits approval"

    _save(note, text.replace("decision:\n", "decision: maybe\n"))
    world.tick()
    assert world.job().state is JobState.WAITING_INPUT
    error = frontmatter.loads(note.read_text())["error"]
    assert "not one of approve, changes, reject" in str(error)

    _save(note, note.read_text().replace("decision: maybe", "decision: changes")
          + "Use a sliding window instead.\n")
    world.tick()
    job = world.job()
    assert job.state is JobState.QUEUED
    assert job.spec["plan_review"] == {"revision": 0, "decision": "changes",
                                       "comments": "Use a sliding window instead."}


def test_plan_rejected_is_cancelled(world: World) -> None:
    note = _plan_wait(world)
    _save(note, note.read_text().replace("decision:\n", "decision: reject\n"))
    world.tick()
    assert world.job().state is JobState.CANCELLED


def test_a_second_round_replaces_the_answered_note_keeping_the_answers(world: World) -> None:
    _wait(world)
    world.tick()
    note = world.fr_path.parent / "Q-FR-12.md"
    _answer(note, "Redis", "429")
    world.tick()
    job = world.ctx.store.claim("w", 60)
    assert job is not None
    _wait(world, questions=(Question("Burst size?", ("10", "100"), "10"),), round_=2)
    world.tick()
    text = note.read_text()
    assert "round: 2" in text and "## 1. Burst size?" in text
    assert "## Earlier answers" in text and "**A:** Redis" in text
    assert sorted(p.name for p in note.parent.iterdir()) == ["FR-12.md", "Q-FR-12.md"]
    _answer(note, "10")
    world.tick()
    assert [d.answers for d in conversation_of(world.job())] == [("Redis", "429"), ("10",)]


@pytest.mark.parametrize(("asked_by", "kind", "said"), [
    ("planner", "questions", "waiting for a person: 2 question(s) from the planner"),
    ("fr", "questions", "waiting for a person: 2 question(s) from the FR"),
    ("opus", "plan", "waiting for a person: plan revision 1 to approve"),
])
def test_the_waiting_event_names_who_asked_in_words(
    world: World, asked_by: str, kind: str, said: str
) -> None:
    waiting = Waiting(kind="plan" if kind == "plan" else "questions", asked_by=asked_by,
                      stage="plan", iteration=0, round=1, since=world.clock.now().isoformat(),
                      questions=QUESTIONS if kind == "questions" else ())
    start_waiting(world.ctx.store, world.job(), waiting)
    events = [e.message for e in world.ctx.store.events(world.job().id)
              if e.kind == "waiting_input"]
    assert events == [said]
    assert waiting.asker == {"planner": "the planner", "fr": "the FR", "opus": "opus"}[asked_by]
