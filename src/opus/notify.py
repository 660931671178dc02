"""Notifications through apprise, behind a durable outbox.

`AppriseNotifier.notify()` first writes the notification to `outbox_dir` (one JSON file,
written atomically), then tries to send it. A URL that fails keeps the file, with an
attempt count and a next-attempt time (exponential backoff); `flush()` retries what is
due, so the daemon calls it at startup (to send what it owed when it died) and from its
loop. Nothing here raises into the pipeline: a broken URL is logged and skipped.

The outbox never stores the URLs themselves (they often carry tokens); it stores a short
hash of each URL a notification already reached, written after each URL that took it, so
a restart with more URLs still delivers to the new ones and never twice to an old one,
not even when the process dies between two URLs. Why a URL failed is apprise's own log
line (captured with `apprise.LogCapture`), kept in the entry and logged.

The daemon calls `start()`: from then on `notify()` only stores and a thread of the
notifier's own sends, so a hung URL (apprise waits up to 4 s to connect and 4 s to read)
never holds the daemon's loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opus.clock import SystemClock
from opus.seams import Clock, NotifyKind

if TYPE_CHECKING:
    # apprise loads ~100 plugins (~0.4 s): imported only where a URL is configured.
    import apprise

log = logging.getLogger(__name__)

APPRISE_WIKI = "https://github.com/caronc/apprise/wiki"
SEND_TIMEOUT_S = 30.0
"""An upper bound for one apprise send to one URL (its own timeouts are 4 s + 4 s)."""
SENDER_TICK_S = 5.0
"""How often the sending thread looks for retries that came due."""

_NOTIFY_TYPE: dict[str, str] = {
    "pr_opened": "success",
    "recovered": "info",
    "info": "info",
    "budget": "warning",
    "stuck": "warning",
    "failed": "failure",
    "breaker": "failure",
    "needs_you": "warning",
    "ready": "success",
}


class Message(NamedTuple):
    """A notification ready for `Notifier.notify(*message)`."""

    kind: NotifyKind
    title: str
    body: str


# --------------------------------------------------------------------------- messages


def pr_opened(fr_id: str, title: str, url: str) -> Message:
    """A pull request is open and waits for a human review."""
    return Message(
        "pr_opened",
        f"opus: {fr_id} ready for review",
        f"{fr_id} ({title}) passed its tests and review; the pull request is open:\n{url}\n"
        "Review it and merge or close it; opus never merges.",
    )


def job_failed(fr_id: str, reason: str) -> Message:
    """A job gave up."""
    return Message(
        "failed",
        f"opus: {fr_id} failed",
        f"{fr_id} failed: {reason}\n"
        f"See `opus logs {fr_id}`; fix the note or the repo, then `opus retry {fr_id}` "
        "(or set `status: planned` in the note again).",
    )


def stage_stuck(fr_id: str, stage: str, minutes: float, reason: str | None = None) -> Message:
    """A stage ran past its timeout (or, with `reason`, went silent)."""
    what = reason or (
        f"The {stage} stage of {fr_id} has run for {minutes:.0f} minutes, past "
        "pipeline.stage_timeout_s"
    )
    return Message(
        "stuck",
        f"opus: {fr_id} stuck in {stage}",
        f"{what}; opus stops it and retries it once from its last checkpoint.\n"
        f"Check `opus logs {fr_id} -f`; `opus cancel {fr_id}` stops it for good.",
    )


def pr_unreadable(fr_id: str, reason: str) -> Message:
    """The forge keeps refusing to show a job's PR, so opus stopped checking it."""
    return Message(
        "stuck",
        f"opus: cannot check the PR of {fr_id}",
        f"The forge refused every check of {fr_id}'s pull request: {reason}\n"
        "opus no longer checks it. Fix the token or `pr.repository`, then restart or "
        "reload opus (`systemctl reload opus`) to check it again.",
    )


def needs_you(
    fr_id: str, pr_number: int, url: str, *, what: str, detail: str, todo: str
) -> Message:
    """opus stopped reacting on an open PR and hands it to a person: `what` happened
    ("CI still failing"), `detail` names the cause (failing checks, conflicted files),
    `todo` says what the person should do."""
    return Message(
        "needs_you",
        f"{what} on PR {pr_number} ({fr_id}) — needs you",
        f"{what} on PR {pr_number} ({fr_id}): {detail}\n{url}\n{todo}\n"
        f"opus does not react to this again by itself; `opus logs {fr_id}` shows what "
        "it tried.",
    )


def ready_to_merge(fr_id: str, pr_number: int, url: str) -> Message:
    """A human approved the PR and every check on its head is green."""
    return Message(
        "ready",
        f"PR {pr_number} ({fr_id}) is ready to merge",
        f"PR {pr_number} ({fr_id}) is ready to merge: a reviewer approved it and all its "
        f"checks are green.\n{url}\nMerge it when you are ready; opus never merges.",
    )


def needs_answer(fr_id: str, note: str, count: int, *, reminder: bool = False) -> Message:
    """A job waits for answers to questions (from its agent or its FR's open questions)."""
    again = "Reminder: " if reminder else ""
    what = "a question" if count == 1 else f"{count} questions"
    return Message(
        "needs_you",
        f"opus: {fr_id} needs your answer",
        f"{again}{fr_id} waits for your answer to {what}: {note}\n"
        "Write each answer under its question and set `status: answered` in that note, or "
        f"run `opus answer {fr_id}`. Nothing is spent while it waits.",
    )


def plan_awaits_approval(fr_id: str, note: str, *, reminder: bool = False) -> Message:
    """A plan waits for a person's decision before any code is written."""
    again = "Reminder: " if reminder else ""
    return Message(
        "needs_you",
        f"opus: plan for {fr_id} awaits approval",
        f"{again}The plan for {fr_id} is ready: {note}\n"
        "Set `decision: approve`, `changes` (with your comments under \"Comments\") or "
        "`reject` in that note. Nothing is spent while it waits.",
    )


def input_gone(fr_id: str, note: str) -> Message:
    """The note a job waited on was deleted: the job is cancelled."""
    return Message(
        "failed",
        f"opus: {fr_id} cancelled",
        f"The note {note} that {fr_id} waited on was deleted, so the job is cancelled. "
        f"Set `status: planned` in the FR note (or `opus retry {fr_id}`) to start it again.",
    )


def recovered(count: int) -> Message:
    """The daemon restarted and resumed interrupted jobs."""
    jobs = "job" if count == 1 else "jobs"
    return Message(
        "recovered",
        f"opus: recovered {count} {jobs} after a restart",
        f"opus restarted and resumed {count} interrupted {jobs} from their last "
        "completed stage. Nothing to do; `opus status` shows them. If restarts repeat, "
        "read the service log (`journalctl -u opus`).",
    )


def budget_hit(scope: str, spent: float, ceiling: float) -> Message:
    """A cost ceiling was reached (`scope` is an FR id or "daily")."""
    return Message(
        "budget",
        f"opus: {scope} budget reached",
        f"{scope} has spent ${spent:.2f} of its ${ceiling:.2f} ceiling, so opus stopped "
        "spending there. Raise budget.job_usd / budget.daily_usd (or the note's `budget:`) "
        "if that is intended, or wait for the next day.",
    )


def breaker_opened(key: str, failures: int, cooldown_s: float) -> Message:
    """A circuit breaker opened after repeated failures."""
    return Message(
        "breaker",
        f"opus: paused {key} after {failures} failures",
        f"{key} failed {failures} times in a row, so opus stops using it for "
        f"{cooldown_s / 60:.0f} minutes and then tries once more. Check `opus doctor` "
        "and the logs of the failed jobs.",
    )


def engine_refused(key: str, reason: str, cooldown_s: float) -> Message:
    """The API refused opus's key or account: claiming stopped until it works again."""
    return Message(
        "breaker",
        f"opus: paused {key}: the Anthropic API refused opus's key",
        f"{reason}\nNo job is failed for it: queued and refused jobs wait, and opus tries "
        f"again every {cooldown_s / 60:.0f} minutes by itself. `opus status` shows the "
        "breaker; `opus doctor` checks the key is set.",
    )


# --------------------------------------------------------------------------- checks


def check_urls(urls: Sequence[str]) -> list[str]:
    """Problems with the apprise URLs in `notify.urls`, one line each (empty: all good)."""
    if not urls:
        return []
    import apprise

    problems = []
    for index, url in enumerate(urls):
        if not apprise.Apprise().add(url):
            problems.append(
                f"notify.urls[{index}] ({_redact(url)}) is not a valid apprise URL; "
                f"see {APPRISE_WIKI} for the formats"
            )
    return problems


def _redact(url: str) -> str:
    """The scheme only: the rest of an apprise URL often holds a token."""
    scheme, sep, _rest = url.partition("://")
    return f"{scheme}://…" if sep else "unparseable"


def _url_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class OutboxEntry:
    """One notification waiting in the outbox."""

    id: str
    kind: str
    title: str
    body: str
    created_at: str
    next_attempt_at: str
    attempts: int = 0
    sent_to: tuple[str, ...] = field(default=())
    last_error: str | None = None


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _outbox_lock(outbox_dir: Path) -> Iterator[None]:
    """One sender at a time over the outbox, across notifier objects (a reload builds a
    new one while the old may still be sending) and processes (a CLI command)."""
    with (outbox_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_entry(path: Path) -> OutboxEntry | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["sent_to"] = tuple(data.get("sent_to", ()))
        return OutboxEntry(**data)
    except (OSError, ValueError, TypeError) as exc:
        # Keep the bytes for a human, but stop retrying them.
        log.error("notification outbox file %s is unreadable (%s); renamed to .bad", path, exc)
        with contextlib.suppress(OSError):
            path.rename(path.with_suffix(".bad"))
        return None


# --------------------------------------------------------------------------- notifier


class AppriseNotifier:
    """Implements `opus.seams.Notifier`: apprise to every URL, through a durable outbox.

    Thread-safe: workers may call `notify()` while the loop calls `flush()`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        outbox_dir: Path,
        *,
        clock: Clock | None = None,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        give_up_after_s: float = 24 * 3600.0,
    ) -> None:
        self.outbox_dir = outbox_dir
        self._clock = clock or SystemClock()
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._give_up_after_s = give_up_after_s
        self._lock = threading.Lock()
        self._urls = tuple(urls)
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._sender: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AppriseNotifier(urls={len(self._urls)}, pending={len(self.pending())})"

    @functools.cached_property
    def _targets(self) -> dict[str, apprise.Apprise]:
        """Built at the first send, not at construction: apprise costs ~0.4 s to import,
        which a job process would otherwise pay before its first model call."""
        return self._build_targets(self._urls)

    @staticmethod
    def _build_targets(urls: Sequence[str]) -> dict[str, apprise.Apprise]:
        # An invalid URL is reported here, once, and then simply left out.
        for problem in check_urls(urls):
            log.error("%s; notifications skip it", problem)
        targets: dict[str, apprise.Apprise] = {}
        if not urls:
            return targets
        import apprise

        for url in urls:
            target = apprise.Apprise()
            if target.add(url):
                targets[_url_id(url)] = target
        return targets

    def notify(self, kind: NotifyKind, title: str, body: str) -> None:
        """Store the notification durably, then try to send it. Never raises."""
        if not self._urls:
            log.info("notification (no notify.urls configured): %s", title)
            return
        try:
            self._store(kind, title, body)
        except OSError as exc:
            log.error("cannot write notification outbox %s: %s", self.outbox_dir, exc)
            return
        if self._sender is not None:
            self._kick.set()
        else:
            self.flush()

    def start(self) -> None:
        """Send from a thread of the notifier's own: `notify()` then only stores."""
        if self._sender is not None or not self._urls:
            return
        self._stopping.clear()
        self._sender = threading.Thread(target=self._send_loop, name="opus-notify", daemon=True)
        self._sender.start()
        self._kick.set()  # what the outbox held at start goes out now

    def stop(self, timeout_s: float = SEND_TIMEOUT_S) -> None:
        """Stop the sending thread (after the send under way, at most `timeout_s`)."""
        sender, self._sender = self._sender, None
        if sender is None:
            return
        self._stopping.set()
        self._kick.set()
        sender.join(timeout=timeout_s)

    def flush(self, before_send: Callable[[], object] | None = None) -> int:
        """Send every due notification in the outbox; returns how many were completed.

        `before_send` is called before each send to one URL (the daemon extends systemd's
        start or stop timeout there, as each may take up to `SEND_TIMEOUT_S`).
        """
        if not self.outbox_dir.is_dir():
            return 0
        with self._lock, _outbox_lock(self.outbox_dir):
            done = 0
            for path in sorted(self.outbox_dir.glob("*.json")):
                entry = _read_entry(path)
                if entry is not None and self._due(entry):
                    done += self._attempt(path, entry, before_send)
            return done

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            self._kick.wait(timeout=SENDER_TICK_S)
            self._kick.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception:  # the sender must outlive any one bad entry
                log.exception("sending notifications failed; trying again later")

    def pending(self) -> list[OutboxEntry]:
        """What the outbox still holds, oldest first."""
        entries = (_read_entry(path) for path in sorted(self.outbox_dir.glob("*.json")))
        return [entry for entry in entries if entry is not None]

    # ------------------------------------------------------------------ internals

    def _store(self, kind: str, title: str, body: str) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        now = self._clock.now()
        entry_id = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        entry = OutboxEntry(
            id=entry_id,
            kind=kind,
            title=title,
            body=body,
            created_at=now.isoformat(),
            next_attempt_at=now.isoformat(),
        )
        _write_atomic(self.outbox_dir / f"{entry_id}.json", asdict(entry))

    def _due(self, entry: OutboxEntry) -> bool:
        return datetime.fromisoformat(entry.next_attempt_at) <= self._clock.now()

    def _attempt(
        self, path: Path, entry: OutboxEntry, before_send: Callable[[], object] | None = None
    ) -> int:
        """Send `entry` to the URLs it has not reached; 1 when it is finished with.

        Each URL that takes it is written down at once, so no later failure or crash
        sends it there twice.
        """
        errors = []
        for number, (url_id, target) in enumerate(self._targets.items(), start=1):
            if url_id in entry.sent_to:
                continue
            if before_send is not None:
                before_send()
            error = _send(target, entry)
            if error is None:
                entry = replace(entry, sent_to=(*entry.sent_to, url_id))
                self._save(path, entry)
            else:
                errors.append(f"notify.urls #{number}: {error}")
        if not errors:
            path.unlink(missing_ok=True)
            return 1
        return self._reschedule(path, entry, "; ".join(errors))

    @staticmethod
    def _save(path: Path, entry: OutboxEntry) -> None:
        try:
            _write_atomic(path, asdict(entry))
        except OSError as exc:
            log.error("cannot update notification outbox %s: %s", path, exc)

    def _reschedule(self, path: Path, entry: OutboxEntry, error: str) -> int:
        now = self._clock.now()
        age_s = (now - datetime.fromisoformat(entry.created_at)).total_seconds()
        if age_s >= self._give_up_after_s:
            log.error(
                "giving up on notification %r after %d attempts over %.0f h: %s",
                entry.title, entry.attempts + 1, age_s / 3600, error,
            )
            path.unlink(missing_ok=True)
            return 1
        attempts = entry.attempts + 1
        delay_s = min(self._retry_base_s * 2 ** (attempts - 1), self._retry_max_s)
        log.warning(
            "notification %r not delivered (attempt %d, next in %.0f s): %s",
            entry.title, attempts, delay_s, error,
        )
        later = replace(
            entry,
            attempts=attempts,
            next_attempt_at=(now + timedelta(seconds=delay_s)).isoformat(),
            last_error=error,
        )
        try:
            _write_atomic(path, asdict(later))
        except OSError as exc:
            log.error("cannot update notification outbox %s: %s", path, exc)
        return 0


def _send(target: apprise.Apprise, entry: OutboxEntry) -> str | None:
    """None when apprise reports success, else why not (apprise's own words)."""
    import apprise  # loaded already: `target` is one of its objects

    try:
        with apprise.LogCapture(  # type: ignore[no-untyped-call]
            level=logging.WARNING, fmt="%(message)s"
        ) as said:
            ok = target.notify(
                body=entry.body, title=entry.title,
                notify_type=_NOTIFY_TYPE.get(entry.kind, "info"),
            )  # fmt: skip
    except Exception as exc:  # apprise plugins raise anything; none may reach the pipeline
        return f"{type(exc).__name__}: {exc}"
    # apprise reports a failed delivery by its return value and its log, not by raising.
    if ok:
        return None
    reason = " ".join(line.strip() for line in str(said.getvalue()).splitlines() if line.strip())
    return reason[:300] or "apprise reported a failed delivery"
