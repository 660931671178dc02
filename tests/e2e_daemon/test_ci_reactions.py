"""`opus run` as a real subprocess with the github provider against the forge stand-in,
real git, a bare remote and apprise's json:// to a loopback sink: failing CI → one round
→ green + approved → one "ready to merge" across a restart; CI failing for good → one
"needs you"; SIGKILL in the middle of a CI round → resumed, no second round.

The stand-in's CI reads `fr-1.txt` in the pushed commit: it fails until the file says
`fixed`. The scripted coder writes `FR-1` first; told about the failing CI it writes
`FR-1 fixed` (or, for the escalation test, keeps failing).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import frontmatter
import pytest

from opus.domain import JobState
from tests.e2e_daemon.agency import Agency, scripted_reply
from tests.e2e_daemon.harness import Daemon, Daemons, Workspace, wait_until
from tests.ops.httpsink import Sink
from tests.standins.ci import StandinCheck
from tests.standins.forge import ForgeStandin
from tests.standins.messages_api import reply, text, tool_use

TOKEN_ENV = "OPUS_FORGE_TOKEN"  # an OPUS_ name that is not config reaches the job
CI_LINE = "E   AssertionError: fr-1.txt must say fixed"
LOG = f"2026-01-01T00:00:01.0000000Z \x1b[31m{CI_LINE}\x1b[0m\n##[error]exit code 1\n"
Responder = Callable[[dict[str, Any]], dict[str, Any]]


def _file_at(remote: Path, sha: str) -> str:
    found = subprocess.run(["git", "show", f"{sha}:fr-1.txt"], cwd=remote,
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout


def _ci(remote: Path) -> Callable[[str], list[StandinCheck]]:
    def policy(sha: str) -> list[StandinCheck]:
        if "fixed" in _file_at(remote, sha):
            return [StandinCheck("test", "success", log="ok\n")]
        return [StandinCheck("test", "failure", title="1 failed", log=LOG,
                             annotations=[("fr-1.txt", 1, "must say fixed")])]  # fmt: skip

    return policy


def _first_message(body: dict[str, Any]) -> str:
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)


def ci_coder(told: list[str], *, fix: bool = True, gate: threading.Event | None = None,
             ) -> Responder:  # fmt: skip
    """The coder: `FR-1` at first; in a CI round (its message names the failing CI) it
    writes `FR-1 fixed` (or, without `fix`, another failing text). With `gate`, every
    CI round's first turn waits for it (bounded)."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        message = _first_message(body)
        if "CI failed" not in message:
            return scripted_reply("FR-1", "coder", body)
        if len(body["messages"]) == 1:
            told.append(message)
            if gate is not None:
                gate.wait(timeout=20)
        if len(body["messages"]) > 1:
            return reply(text("Fixed what CI reported."))
        words = "FR-1 fixed\n" if fix else f"FR-1 try {len(told)}\n"
        edit = {"command": "create", "path": "fr-1.txt", "file_text": words}
        return reply(tool_use("str_replace_based_edit_tool", edit))

    return respond


@pytest.fixture
def forge(ws: Workspace) -> Iterator[ForgeStandin]:
    with ForgeStandin("github", remote=ws.root / "remote.git") as server:
        server.ci.policy = _ci(ws.root / "remote.git")
        yield server


def _configure(ws: Workspace, forge: ForgeStandin, sink: Sink, **pr: object) -> dict[str, str]:
    ws.write_config(
        pr={"provider": "github", "api_url": forge.api_url, "repository": "acme/widgets",
            "token_env": TOKEN_ENV, "poll_s": 0.3, **pr},
        notify={"urls": [sink.url]},
        pipeline={"max_iterations": 4},
    )  # fmt: skip
    return {TOKEN_ENV: forge.token}


def _titled(sink: Sink, words: str) -> list[dict[str, Any]]:
    return [m for m in sink.received if words in m.get("title", "")]


def _note(ws: Workspace) -> dict[str, Any]:
    found = sorted((ws.root / "vault" / "10_features").rglob("FR-1.md"))
    assert found, "no FR-1 note"
    return dict(frontmatter.load(str(found[0])).metadata)


def _events(ws: Workspace, kind: str) -> list[str]:
    job = ws.job("FR-1")
    if job is None:
        return []
    return [e.message for e in ws.store.events(job.id) if e.kind == kind]


def _wait_note(ws: Workspace, key: str, value: str) -> dict[str, Any]:
    def shows() -> dict[str, Any] | None:
        meta = _note(ws)
        return meta if str(meta.get(key, "")).startswith(value) else None

    return wait_until(shows, f"the FR note's {key}: {value}")


def _stop(daemon: Daemon) -> None:
    assert daemon.stop(timeout_s=30) == 0, daemon.output[-3000:]


def test_failing_ci_one_round_then_ready_to_merge_once_across_a_restart(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink, forge: ForgeStandin
) -> None:
    told: list[str] = []
    agency.overrides[("FR-1", "coder")] = ci_coder(told)
    env = _configure(ws, forge, sink)
    ws.write_fr("FR-1")
    daemon = daemons.start(ws, env=env)

    wait_until(lambda: _events(ws, "ci_round"), "a CI round", 90)
    wait_until(lambda: forge.prs and forge.prs[1].issue_comments, "the round's PR comment", 90)
    job = ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=90)
    assert len(told) == 1 and CI_LINE in told[0] and "\x1b" not in told[0]
    assert "fr-1.txt:1: must say fixed" in told[0]
    assert len(forge.prs) == 1 and job.iteration == 2
    assert "Fixes: CI failed" in forge.prs[1].issue_comments[-1]["body"]

    forge.review(1, "APPROVED", body="Ship it.")
    wait_until(lambda: _titled(sink, "is ready to merge"), "the ready notification", 60)
    assert _wait_note(ws, "stage", "ready")["status"] == "review"
    # Notifications go out through the outbox, after the state they announce: on a busy
    # machine the PR-opened one may still be on its way here.
    wait_until(lambda: _titled(sink, "ready for review"), "the PR-opened notification", 60)
    _stop(daemon)

    asked = len(forge.ci.asked)
    daemon = daemons.start(ws, env=env)
    wait_until(lambda: len(forge.ci.asked) > asked + 2, "the restarted poller to look again", 60)
    _stop(daemon)
    assert [m["title"] for m in _titled(sink, "ready to merge")] == [
        "PR 1 (FR-1) is ready to merge"]
    assert _titled(sink, "needs you") == []
    assert len(_titled(sink, "ready for review")) == 1  # the CI round's delivery is quiet
    assert len(_events(ws, "ci_round")) == 1
    assert forge.unexpected == [] and forge.ci.log_host.unexpected == []


def test_ci_failing_every_round_escalates_once_and_spends_nothing_more(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink, forge: ForgeStandin
) -> None:
    told: list[str] = []
    agency.overrides[("FR-1", "coder")] = ci_coder(told, fix=False)
    env = _configure(ws, forge, sink, ci_rounds=1)
    ws.write_fr("FR-1")
    daemon = daemons.start(ws, env=env)

    wait_until(lambda: _titled(sink, "needs you"), "the escalation", 120)
    meta = _wait_note(ws, "error", "CI still failing on PR 1 — needs you")
    assert meta["status"] == "review"
    asked = len(forge.ci.asked)
    wait_until(lambda: len(forge.ci.asked) > asked + 3, "more polls", 60)
    code, shown = ws.cli("status")
    _stop(daemon)

    assert [m["title"] for m in _titled(sink, "needs you")] == [
        "CI still failing on PR 1 (FR-1) — needs you"]
    assert len(told) == 1 and agency.count("FR-1", "coder") == 2  # one CI round, no more
    assert len(_events(ws, "ci_round")) == 1 and len(_events(ws, "ci_escalated")) == 1
    assert code == 0 and "CI still failing on PR 1" in shown
    assert ws.job("FR-1").state is JobState.AWAITING_REVIEW  # type: ignore[union-attr]


def test_sigkill_during_a_ci_round_resumes_it_without_a_second_round(
    ws: Workspace, daemons: Daemons, agency: Agency, sink: Sink, forge: ForgeStandin
) -> None:
    told: list[str] = []
    gate = threading.Event()
    agency.overrides[("FR-1", "coder")] = ci_coder(told, gate=gate)
    env = _configure(ws, forge, sink)
    ws.write_fr("FR-1")
    first = daemons.start(ws, env=env)

    wait_until(lambda: told, "the CI round's coder", 90)
    failing = forge.ci.asked[-1]
    first.stop(signal.SIGKILL, timeout_s=10)
    gate.set()

    second = daemons.start(ws, env=env)
    wait_until(lambda: forge.prs[1].issue_comments, "the round's delivery", 90)
    ws.wait_state("FR-1", JobState.AWAITING_REVIEW, timeout_s=60)
    asked = len(forge.ci.asked)
    wait_until(lambda: len(forge.ci.asked) > asked + 2, "the poller to look again", 60)
    _stop(second)

    rounds = _events(ws, "ci_round")
    assert len(rounds) == 1 and failing[:10] in rounds[0]
    assert len(told) == 2  # the killed coder, then the resumed one; one round
    job = ws.job("FR-1")
    assert job is not None and job.iteration == 2 and len(forge.prs) == 1
    codes = [r for r in ws.store.stage_runs(job.id) if r.ok and r.stage.value == "code"]
    assert [r.iteration for r in codes] == [1, 2]
    assert "fixed" in _file_at(ws.root / "remote.git", forge.ci.asked[-1])
