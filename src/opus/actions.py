"""The operator's actions as every front end takes them: change, wake, say what happened.

`opus retry`, `opus cancel`, `opus answer`, `opus pause` / `opus resume` and the keys of
`opus top` all come here: the change is made in the registry by `opus.control`, then a
running daemon is woken (`opus.wake`) so it acts within a second, and the sentence
returned is what the person sees. Errors are `opus.control`'s (`NotFound`,
`UsageError`), unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opus.config import Settings
from opus.wake import wake

if TYPE_CHECKING:
    from opus.registry import Registry


class Operator:
    """Acts on one project's registry, opened on the first action (SQLAlchemy loads then)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Registry | None = None

    def __repr__(self) -> str:
        return f"Operator({self.settings.state_dir}, open={self._store is not None})"

    def store(self) -> Registry:
        if self._store is None:
            from opus.registry import open_store

            self._store = open_store(self.settings.database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def retry(self, fr: str) -> str:
        """Re-queue a failed or cancelled job (`fr`: an FR id or a job number)."""
        from opus.control import retry

        job = retry(self.store(), fr)
        wake(self.settings.state_dir)
        return f"{job.fr_id}: re-queued (job {job.id}); it resumes from its last checkpoint"

    def cancel(self, fr: str) -> str:
        """Stop a job and clean its worktree (a running one stops at its next checkpoint)."""
        from opus.control import cancel

        job = cancel(self.store(), self.settings, fr)
        wake(self.settings.state_dir)
        return f"{job.fr_id}: cancelled (job {job.id})"

    def answer(
        self, fr: str, texts: Sequence[str] | None, edit: Callable[[str], str]
    ) -> str:
        """Answer the questions a waiting job asks, or decide its plan (`opus answer`)."""
        from opus.clock import SystemClock
        from opus.conversation.answering import answer_job

        job = answer_job(self.store(), fr, texts, clock=SystemClock(), edit=edit)
        wake(self.settings.state_dir)
        resumes = "; it resumes where it asked" if job.state.value == "queued" else ""
        return f"{job.fr_id}: {job.state.value} (job {job.id}){resumes}"

    def set_paused(self, paused: bool) -> str:
        """Stop (or restart) claiming new work on every daemon of this registry."""
        from opus.control import set_paused

        set_paused(self.store(), paused)
        wake(self.settings.state_dir)
        if paused:
            return "paused: no new work will be claimed; running jobs finish (`opus resume`)"
        return "resumed: claiming new work"
