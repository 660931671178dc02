"""The JSON API over a real registry (SQLite file and PostgreSQL), through httpx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from opus.cli import main
from opus.clock import SystemClock
from opus.control import is_paused
from opus.dashboard.jobview import LOG_TAIL_LINES
from opus.domain import JobState
from tests.board.conftest import finish_many
from tests.conftest import make_repo, run_git
from tests.dashboard.helpers import SECRET, TOKEN, XSS, Project, make_project, web_client
from tests.registry.factory import PG_CONNINFO, make_fr, private_pg_url

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def client(project: Project) -> TestClient:
    return web_client(project.context())


def lanes(board: dict[str, object]) -> dict[str, list[str]]:
    return {lane["lane"]: [card["fr"] for card in lane["cards"]]  # type: ignore[index]
            for lane in board["lanes"]}  # type: ignore[attr-defined]


def test_board_puts_each_job_in_its_lane(any_project: Project) -> None:
    board = client(any_project).get("/api/v1/board").json()
    assert lanes(board) == {
        "queued": ["FR-1"], "running": ["FR-2"], "needs_you": [], "in_review": ["FR-3"],
        "ready": [], "done": ["FR-5"], "failed": ["FR-4"],
    }
    assert board["daily_usd"] == 7.5 and board["spent_today_usd"] == pytest.approx(4.5)
    failed = next(lane for lane in board["lanes"] if lane["lane"] == "failed")["cards"][0]
    assert failed["title"] == XSS  # JSON carries the text; pages escape it
    assert SECRET not in json.dumps(board) and "[redacted]" in failed["error"]


def test_board_windows_the_ended_lanes_with_their_totals(any_project: Project) -> None:
    finish_many(any_project.store, any_project.clock, done=0, failed=14)  # 15 Failed
    web = client(any_project)
    failed = next(v for v in web.get("/api/v1/board").json()["lanes"] if v["lane"] == "failed")
    assert (failed["total"], failed["offset"], len(failed["cards"])) == (15, 0, 10)
    page = web.get("/api/v1/board?failed_from=10&failed_n=4").json()
    tail = next(v for v in page["lanes"] if v["lane"] == "failed")
    every = next(v for v in web.get("/api/v1/board?failed_n=1000").json()["lanes"]
                 if v["lane"] == "failed")
    assert [c["fr"] for c in tail["cards"]] == [c["fr"] for c in every["cards"]][10:14]
    assert (tail["total"], tail["offset"]) == (15, 10)
    bad = web.get("/api/v1/board?failed_n=1001")
    assert bad.status_code == 400 and "failed_n=1001" in bad.json()["error"]
    assert web.get("/api/v1/board?done_from=x").status_code == 400


def test_job_has_rounds_plan_test_review_events_and_log(any_project: Project) -> None:
    job_id = any_project.ids["FR-2"]
    detail = client(any_project).get(f"/api/v1/jobs/{job_id}").json()
    assert detail["job"]["fr"] == "FR-2" and detail["job"]["state"] == "running"
    rounds = {r["round"]: [s["stage"] for s in r["stages"]] for r in detail["rounds"]}
    assert rounds == {0: ["plan"], 1: ["code", "test"], 2: ["code", "test", "review"]}
    plan = detail["rounds"][0]["stages"][0]
    assert plan["duration_s"] == 60 and plan["tokens"] == 550 and plan["cost_usd"] == 0.25
    assert plan["cache_read_share"] == pytest.approx(300 / 500)  # of the prompt's tokens
    assert plan["prompt_sha256"] == "ab" * 32
    assert not detail["rounds"][1]["stages"][1]["ok"]  # round 1's test failed
    assert detail["plan"]["steps"] == [{"title": "step one", "postcondition": "ok"}]
    assert detail["test"] == {"round": 2, "passed": True, "command": "pytest -q",
                              "exit_code": 0, "timed_out": False, "output_tail": "3 passed"}
    assert detail["review"]["verdict"] == "approve"
    assert detail["review"]["comments"][0]["path"] == "src/a.py"
    assert XSS in detail["fr_body"]
    tail = detail["log_tail"]
    assert tail["truncated"] and len(tail["lines"]) == LOG_TAIL_LINES
    assert tail["lines"][-1] == "token [redacted]"


def test_jobs_events_log_metrics_daemons(any_project: Project) -> None:
    web = client(any_project)
    jobs = web.get("/api/v1/jobs", params={"state": ["queued", "failed"]}).json()["jobs"]
    assert sorted(job["fr"] for job in jobs) == ["FR-1", "FR-4"]
    failed = any_project.ids["FR-4"]
    events = web.get(f"/api/v1/jobs/{failed}/events").json()["events"]
    assert [e["kind"] for e in events] == ["failed"] and events[0]["message"].endswith(XSS)
    assert web.get(f"/api/v1/jobs/{failed}/events", params={"after": events[0]["id"]}).json() \
        == {"events": []}
    log = web.get(f"/api/v1/jobs/{any_project.ids['FR-2']}/log").json()
    assert len(log["lines"]) == LOG_TAIL_LINES
    metrics = web.get("/api/v1/metrics").json()
    assert metrics["rounds_per_fr"] == {"FR-1": 0, "FR-2": 2, "FR-3": 1, "FR-4": 1, "FR-5": 1}
    assert metrics["median_stage_s"]["plan"] == 60 and metrics["daily_usd"] == 7.5
    daemons = web.get("/api/v1/daemons").json()
    assert daemons["daemons"] == [] and daemons["daemon_running"] is False


def test_unknown_job_and_bad_query(project: Project) -> None:
    web = client(project)
    assert web.get("/api/v1/jobs/999").status_code == 404
    assert "no job 999" in web.get("/api/v1/jobs/999").json()["error"]
    assert web.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 400


def test_actions_need_the_token(any_project: Project) -> None:
    web = client(any_project)
    failed = any_project.ids["FR-4"]
    refused = web.post(f"/api/v1/jobs/{failed}/retry")
    assert refused.status_code == 403 and "token" in refused.json()["error"]
    wrong = web.post(f"/api/v1/jobs/{failed}/retry", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert any_project.store.get(failed).state is JobState.FAILED
    assert web.get(f"/api/v1/jobs/{failed}/retry").status_code == 405  # POST only

    done = web.post(f"/api/v1/jobs/{failed}/retry", headers=BEARER)
    assert done.status_code == 200 and "re-queued" in done.json()["message"]
    assert any_project.store.get(failed).state is JobState.QUEUED
    again = web.post(f"/api/v1/jobs/{failed}/retry", headers=BEARER)
    assert again.status_code == 409 and "only failed or cancelled" in again.json()["error"]

    running = any_project.ids["FR-2"]
    assert web.post(f"/api/v1/jobs/{running}/cancel", headers=BEARER).status_code == 200
    assert any_project.store.get(running).state is JobState.CANCELLED
    assert web.post("/api/v1/pause", headers=BEARER).status_code == 200
    assert is_paused(any_project.store)
    assert web.get("/api/v1/board").json()["paused"] is True
    assert web.post("/api/v1/resume", headers=BEARER).status_code == 200
    assert not is_paused(any_project.store)
    assert web.post("/api/v1/jobs/1/pause", headers=BEARER).status_code == 404
    assert web.post("/api/v1/retry", headers=BEARER).status_code == 404
    assert (any_project.settings.state_dir / "wake").exists()  # the daemon is woken


def test_metrics_are_opus_metrics_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's numbers and the CLI's come from the same rows and the same function."""
    # The data lies inside the window of the CLI, which asks the system clock.
    project = make_project(tmp_path, start=datetime.now(UTC) - timedelta(hours=1))
    try:
        monkeypatch.chdir(tmp_path)
        assert main(["--config", str(tmp_path / "opus.toml"), "metrics", "--json"]) == 0
        cli = json.loads(capsys.readouterr().out)
        web = web_client(project.context(clock=SystemClock()))
        api = web.get("/api/v1/metrics").json()
    finally:
        project.close()
    for moving in ("since", "until"):
        cli.pop(moving), api.pop(moving)
    assert api.pop("daily_usd") == 7.5
    assert api == cli and cli["jobs"] == 5


def test_diff_stat_of_the_jobs_branch(project: Project, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "target")
    run_git(repo, "checkout", "-q", "-b", "opus/fr-9-x")
    (repo / "a.txt").write_text("one\ntwo\n")
    run_git(repo, "add", "a.txt")
    run_git(repo, "commit", "-q", "-m", "add a")
    run_git(repo, "checkout", "-q", "main")
    job = project.store.enqueue(make_fr("FR-9", "body"), repo)
    project.store.update(job.id, branch="opus/fr-9-x", base="main")
    detail = client(project).get(f"/api/v1/jobs/{job.id}").json()
    assert detail["diff_stat"].splitlines() == [
        " a.txt | 2 ++", " 1 file changed, 2 insertions(+)"]
    elsewhere = project.store.enqueue(make_fr("FR-10", "body"), tmp_path / "not-here")
    project.store.update(elsewhere.id, branch="opus/fr-10")
    assert client(project).get(f"/api/v1/jobs/{elsewhere.id}").json()["diff_stat"] is None


@pytest.mark.postgres
def test_a_lost_postgres_connection_is_one_failed_read(tmp_path: Path) -> None:
    """The board keeps one connection; when the server drops it, one request fails (503)
    and the next connects anew."""
    import psycopg

    with private_pg_url() as url:
        project = make_project(tmp_path, url)
        ctx = project.context()
        try:
            web = web_client(ctx)
            assert web.get("/api/v1/jobs").status_code == 200
            pid = ctx.source._conn.info.backend_pid  # type: ignore[attr-defined]
            with psycopg.connect(PG_CONNINFO, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            lost = web.get("/api/v1/jobs")
            assert lost.status_code == 503 and "cannot reach postgresql" in lost.json()["error"]
            assert len(web.get("/api/v1/jobs").json()["jobs"]) == 5
        finally:
            project.close()


def test_a_stage_under_way_shows_running_and_one_a_kill_cut_short_says_so(
    any_project: Project,
) -> None:
    from opus.domain import Stage, Usage
    from opus.pipeline.metering import StageMeter

    job_id = any_project.ids["FR-2"]
    meter = StageMeter(any_project.store, any_project.clock, job_id, Stage.CODE, 3,
                       holder="worker-1", started=any_project.clock.now())
    meter(Usage(input_tokens=1000, output_tokens=200), 0.05)  # one billed call so far
    web = client(any_project)

    def last_stage() -> dict[str, object]:
        detail = web.get(f"/api/v1/jobs/{job_id}").json()
        stage: dict[str, object] = detail["rounds"][-1]["stages"][-1]
        return stage

    assert (last_stage()["stage"], last_stage()["round"]) == ("code", 3)
    assert last_stage()["result"] == "running"
    assert "<td>running</td>" in web.get(f"/jobs/{job_id}").text
    any_project.store.release(job_id, "worker-1")  # its job process was killed
    assert last_stage()["result"] == "cut short"
    assert "<td>cut short</td>" in web.get(f"/jobs/{job_id}").text
