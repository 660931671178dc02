"""`opus answer FR`: answer a waiting job's questions (or decide its plan) from a shell.

The answers go into the registry at once (the job is queued again, and the daemon,
woken through `opus.wake`, resumes it within a second) and, when the question note
exists, into the note too (`status: answered`), so the vault shows what was decided.

With `--text`: one text per question, in order; for a plan, `approve`, `reject` or
`changes: <comments>`. Without it, `$EDITOR` opens the questions (or the plan) as a note
and what is saved is read like the note itself.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from opus.control import find_job
from opus.conversation import notes
from opus.conversation.waiting import (
    Waiting,
    answer,
    conversation_of,
    decide_plan,
    waiting_of,
)
from opus.domain import Job
from opus.errors import NoteError, UsageError
from opus.seams import Clock, JobStore
from opus.vault.write import edit_own_note, replace_if_unchanged

Editor = Callable[[str], str]


def answer_job(
    store: JobStore,
    fr: str,
    texts: Sequence[str] | None,
    *,
    clock: Clock,
    edit: Editor,
) -> Job:
    """Answer the questions (or decide the plan) `fr`'s job waits on; returns the job."""
    job = find_job(store, fr)
    waiting = waiting_of(job)
    if waiting is None:
        raise UsageError(f"{job.fr_id} is {job.state.value}; it waits for no answer")
    if waiting.kind == "plan":
        decision, comments = _plan_decision(job, waiting, texts, edit)
        return decide_plan(store, job, decision, comments)
    answers = list(texts) if texts else list(_edited_answers(job, waiting, edit))
    moved = answer(store, job, answers, clock)
    _mirror_into_note(waiting, answers)
    return moved


def _plan_decision(
    job: Job, waiting: Waiting, texts: Sequence[str] | None, edit: Editor
) -> tuple[str, str]:
    if texts:
        return notes.plan_reply(texts)
    state = notes.read_state(edit(_note_text(waiting) or _plan_template(job, waiting)))
    return state.decision, state.comments


def _plan_template(job: Job, waiting: Waiting) -> str:
    return notes.render_plan(job.fr_id, job.title, waiting, {}, ["see the plan note"])


def _edited_answers(job: Job, waiting: Waiting, edit: Editor) -> tuple[str, ...]:
    text = _note_text(waiting) or notes.render_questions(
        job.fr_id, job.title, waiting, conversation_of(job)
    )
    return notes.read_state(edit(text)).answers


def _note_text(waiting: Waiting) -> str | None:
    if not waiting.note:
        return None
    try:
        return Path(waiting.note).read_text(encoding="utf-8")
    except OSError:
        return None


def _mirror_into_note(waiting: Waiting, answers: Sequence[str]) -> None:
    """Best effort: the registry already holds the answers; the note only shows them."""
    if not waiting.note:
        return
    path = Path(waiting.note)
    try:
        before = path.read_bytes()
        after = notes.with_answers(before.decode("utf-8"), answers).encode("utf-8")
        if after == before or replace_if_unchanged(path, before, after):
            edit_own_note(path, {"status": "answered", "error": None})
    except (OSError, UnicodeDecodeError, NoteError):
        pass


def run_editor(environ: Mapping[str, str]) -> Editor:
    """An `Editor` that opens `$VISUAL` or `$EDITOR` on a temp file and returns what was saved."""
    command = environ.get("VISUAL") or environ.get("EDITOR")
    if not command:
        raise UsageError("set $EDITOR (or $VISUAL), or give the answers with --text")

    def edit(text: str) -> str:
        fd, name = tempfile.mkstemp(prefix="opus-answer-", suffix=".md")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            done = subprocess.run([*shlex.split(command), name], check=False)
            if done.returncode != 0:
                raise UsageError(f"the editor ({command}) exited with {done.returncode}; "
                                 "nothing was answered")
            return Path(name).read_text(encoding="utf-8")
        finally:
            Path(name).unlink(missing_ok=True)

    return edit
