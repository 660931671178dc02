"""The intake host's side of a conversation: notes out, answers and decisions in.

Each intake tick, for every job in `waiting_input`:

1. no note yet → write `Q-<FR>.md` (or `PLAN-<FR>.md`) next to the FR note, record its
   path in `spec.waiting.note`, notify. A note left by a crash between the write and
   the record (same FR, kind and round) is adopted, never written twice; a note of an
   earlier round is replaced by the new round, its answers kept at the end.
2. the note changed since last read → read it: all answers and `status: answered` → the
   job is queued again with them; answers missing → `error:` in the note names them; a
   plan `decision:` → approve, changes (re-plan) or reject (cancelled); another word →
   `error:` in the note.
3. the note was deleted → the job is cancelled, with a notification.
4. waiting longer than `notify.remind_after_h` → one reminder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from opus.conversation import notes
from opus.conversation.waiting import (
    Waiting,
    answer,
    conversation_of,
    decide_plan,
    missing_answers,
    record_note,
    waiting_of,
)
from opus.domain import Job, JobState, Stage
from opus.engines.pricing import format_usd
from opus.errors import NoteError, OpusError, UsageError
from opus.notify import Message, input_gone, needs_answer, plan_awaits_approval
from opus.pipeline.context import PipelineContext
from opus.vault.write import create_note, edit_own_note, replace_if_unchanged
from opus.wake import wake

log = logging.getLogger(__name__)


class ConversationSync:
    """Keeps question and plan notes and the registry in step (the `intake` role)."""

    def __init__(self, ctx: PipelineContext) -> None:
        self.ctx = ctx
        self._read_keys: dict[int, tuple[int, int, int]] = {}
        self._logged: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"ConversationSync(watched={len(self._read_keys)})"

    def tick(self, fr_paths: Mapping[str, Path]) -> int:
        """One pass over the waiting jobs; returns how many resumed or ended."""
        moved = 0
        for job in self.ctx.store.jobs([JobState.WAITING_INPUT]):
            try:
                moved += self._one(job, fr_paths.get(job.fr_id))
            except OpusError as exc:
                if self._logged.get(job.id) != str(exc):
                    log.error("%s: cannot sync the note it waits on: %s", job.fr_id, exc)
                    self._logged[job.id] = str(exc)
        return moved

    def _one(self, job: Job, fr_path: Path | None) -> int:
        waiting = waiting_of(job)
        if waiting is None:
            return 0
        if waiting.note is None:
            path = self._write_note(job, waiting, fr_path or job.fr_path)
            waiting = replace(waiting, note=str(path))
            job = record_note(self.ctx.store, job, waiting)
            self.ctx.notifier.notify(*self._message(job, waiting, reminder=False))
            self.ctx.store.add_event(job.id, "note_written", str(path))
        path = Path(waiting.note or "")
        key = _stat_key(path)
        if key is None:
            return self._deleted(job, path)
        if self._read_keys.get(job.id) != key:
            self._read_keys[job.id] = key
            if self._read(job, waiting, path):
                self._read_keys.pop(job.id, None)
                # A worker daemon on this host claims it at once; other hosts at their poll.
                wake(self.ctx.settings.state_dir)
                return 1
        self._remind(job, waiting)
        return 0

    # ------------------------------------------------------------------ notes out

    def _write_note(self, job: Job, waiting: Waiting, fr_path: Path) -> Path:
        path = fr_path.parent / notes.note_name(waiting.kind, job.fr_id)
        text = self._render(job, waiting)
        if create_note(path, text):
            return path
        old = path.read_bytes()
        try:
            state = notes.read_state(old.decode("utf-8"))
        except (NoteError, UnicodeDecodeError):
            state = None
        if state is None or state.fr != job.fr_id or state.kind != waiting.kind:
            raise NoteError(
                f"{path} exists and is not opus's note for {job.fr_id}; rename it, or answer "
                f"with `opus answer {job.fr_id}`"
            )
        if state.round == waiting.round:
            return path  # written before a crash: the same note, adopted
        if not replace_if_unchanged(path, old, text.encode("utf-8")):
            raise NoteError(f"{path} changed while opus replaced it; trying again next turn")
        return path

    def _render(self, job: Job, waiting: Waiting) -> str:
        if waiting.kind == "questions":
            return notes.render_questions(job.fr_id, job.title, waiting, conversation_of(job))
        plans = [run for run in self.ctx.store.stage_runs(job.id)
                 if run.ok and run.stage is Stage.PLAN and run.iteration == waiting.iteration]
        plan = plans[-1].output if plans else {}
        return notes.render_plan(job.fr_id, job.title, waiting, plan, self._cost_lines(job))

    def _cost_lines(self, job: Job) -> list[str]:
        settings = self.ctx.settings
        own = job.spec.get("budget_usd")
        ceiling = min(settings.budget.job_usd, float(own)) if own is not None else \
            settings.budget.job_usd
        delivered = [j.cost_usd for j in self.ctx.store.jobs(
            [JobState.AWAITING_REVIEW, JobState.DONE])]
        estimate = (
            f"a delivered job has cost {format_usd(sum(delivered) / len(delivered))} on "
            f"average ({len(delivered)} job(s))" if delivered
            else "no delivered job yet to estimate from"
        )
        return [f"spent so far: {format_usd(job.cost_usd)} (planning)",
                f"ceiling for this job: {format_usd(ceiling)}", estimate]

    def _message(self, job: Job, waiting: Waiting, *, reminder: bool) -> Message:
        where = _shown(Path(waiting.note or ""), self.ctx.settings.vault_path)
        if waiting.kind == "plan":
            return plan_awaits_approval(job.fr_id, where, reminder=reminder)
        return needs_answer(job.fr_id, where, len(waiting.questions), reminder=reminder)

    # ------------------------------------------------------------------ answers in

    def _read(self, job: Job, waiting: Waiting, path: Path) -> bool:
        """True when the job moved on (resumed or cancelled)."""
        try:
            state = notes.read_state(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise NoteError(f"cannot read {path}: {exc}") from exc
        if state.round != waiting.round:
            return False
        if waiting.kind == "questions":
            if state.status != "answered":
                return False
            missing = missing_answers(waiting, state.answers)
            if missing:
                self._problem(job, waiting, path, f"no answer to {missing}; write it after "
                              "**Answer:** and save again")
                return False
            answer(self.ctx.store, job, state.answers, self.ctx.clock)
        else:
            if not state.decision:
                return False
            try:
                decide_plan(self.ctx.store, job, state.decision, state.comments)
            except UsageError as exc:
                self._problem(job, waiting, path, str(exc))
                return False
        if waiting.problem:
            edit_own_note(path, {"error": None})
        log.info("%s: %s in %s; resuming", job.fr_id,
                 "answered" if waiting.kind == "questions" else f"decision {state.decision}",
                 _shown(path, self.ctx.settings.vault_path))
        return True

    def _problem(self, job: Job, waiting: Waiting, path: Path, problem: str) -> None:
        if waiting.problem == problem:
            return
        edit_own_note(path, {"error": problem})
        record_note(self.ctx.store, job, replace(waiting, problem=problem))

    def _deleted(self, job: Job, path: Path) -> int:
        from opus.control import remove_worktree

        if not self.ctx.settings.vault_path.is_dir():
            return 0  # the whole vault is away (unmounted): that is not a decision
        reason = f"the note {path.name} it waited on was deleted"
        self.ctx.store.transition(job.id, JobState.CANCELLED, error=reason)
        self.ctx.store.add_event(job.id, "cancelled", reason)
        self.ctx.notifier.notify(*input_gone(job.fr_id, _shown(path, self.ctx.settings.vault_path)))
        remove_worktree(self.ctx.settings, job)
        return 1

    def _remind(self, job: Job, waiting: Waiting) -> None:
        since = waiting.since_at()
        after = timedelta(hours=self.ctx.settings.notify.remind_after_h)
        if waiting.reminded or since is None or self.ctx.clock.now() - since < after:
            return
        record_note(self.ctx.store, job, replace(waiting, reminded=True))
        self.ctx.notifier.notify(*self._message(job, waiting, reminder=True))


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
