"""The operator's commands on real jobs: status --json, logs, metrics --json, retry, cancel.

One `opus run --once` (a subprocess, the anthropic engine against the Messages-API
stand-in) leaves FR-301 awaiting review and FR-300 failed (its tests always fail); the
tests then drive the CLI in-process on that project, the mutating one last.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opus.cli import main
from tests.e2e_cli.helpers import (
    FAST_POLL,
    any_fr_responder,
    api_env,
    clean_env,
    fr_note,
    project_with_repo,
    run_opus,
)
from tests.standins.messages_api import MessagesAPI

STATUS_KEYS = {"job", "fr", "state", "stage", "iteration", "elapsed_s", "cost_usd", "pr", "error"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("operator")
    project = root / "backlog"
    assert run_opus("init", str(project), cwd=root).code == 0
    project_with_repo(project)
    planned = project / "vault" / "10_features" / "03_planned"
    planned.joinpath("FR-300.md").write_text(
        fr_note("FR-300", "Never passes", repo="repo", test_command='"false"')
    )
    planned.joinpath("FR-301.md").write_text(
        fr_note("FR-301", "Always passes", repo="repo", test_command='"true"')
    )
    with MessagesAPI([any_fr_responder] * 40) as api:
        env = clean_env(root, {**FAST_POLL, **api_env(api.base_url),
                               "OPUS_SANDBOX__KIND": "none", "OPUS_PIPELINE__MAX_ITERATIONS": "1"})
        run = run_opus("run", "--once", cwd=project, env=env)
    assert run.code == 1, run.err  # FR-300 failed: `run --once` says so (SPEC §3)
    return project


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def _jobs(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    code, out = _cli(capsys, "status", "--json")
    assert code == 0
    return {job["fr"]: job for job in json.loads(out)["jobs"]}


def test_status_json_has_the_documented_schema(
    in_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = _jobs(capsys)
    assert set(jobs) == {"FR-300", "FR-301"}
    for job in jobs.values():
        assert set(job) >= STATUS_KEYS, sorted(STATUS_KEYS - set(job))
        assert isinstance(job["elapsed_s"], float) and job["elapsed_s"] >= 0
        assert isinstance(job["cost_usd"], float) and job["cost_usd"] > 0
    passed, failed = jobs["FR-301"], jobs["FR-300"]
    assert (passed["state"], passed["stage"], passed["iteration"]) == ("awaiting_review",
                                                                        "deliver", 1)
    assert passed["error"] is None and Path(str(passed["pr"])).is_file()
    assert failed["state"] == "failed" and failed["pr"] is None
    assert "false" in str(failed["error"])
    code, table = _cli(capsys, "status")
    assert code == 0
    pr = Path(str(passed["pr"]))
    assert "FR-300" in table and "failed" in table
    assert str(pr.relative_to(in_project / "vault")) in table and str(pr) not in table
    assert max(len(line) for line in table.splitlines()) <= 100
    code, wide = _cli(capsys, "status", "--wide")
    assert code == 0 and str(pr) in wide


def test_logs_print_the_job_log(in_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(capsys, "logs", "fr-300")  # ids are matched case-insensitively
    assert code == 0
    assert "stage plan" in out and "stage test" in out and "failed:" in out
    code, delivered = _cli(capsys, "logs", "FR-301")
    assert code == 0 and "delivered" in delivered
    # -f on an ended job prints the same lines, then stops.
    code, followed = _cli(capsys, "logs", "-f", "FR-300")
    assert code == 0
    assert followed.splitlines() == out.splitlines() and len(out.splitlines()) > 5


def test_metrics_json_keys(in_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(capsys, "metrics", "--json")
    assert code == 0
    metrics = json.loads(out)
    assert {"jobs_per_day", "jobs", "succeeded", "failed", "success_rate", "mean_pipeline_s",
            "mean_stage_s", "utilisation", "cost_per_day_usd", "cost_total_usd"} <= set(metrics)
    assert (metrics["jobs"], metrics["failed"]) == (2, 1)
    assert metrics["cost_total_usd"] > 0
    code, human = _cli(capsys, "metrics")
    assert code == 0 and human.strip()


def test_retry_requeues_and_cancel_cleans_the_worktree(
    in_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(capsys, "retry", "FR-301")
    assert code == 2 and "only failed or cancelled jobs can be retried" in out

    failed = _jobs(capsys)["FR-300"]
    worktree = in_project / ".opus" / "worktrees" / f"job-{failed['job']}"
    assert not worktree.exists(), "an ended job's worktree is cleaned (its branch stays)"
    assert _cli(capsys, "pause")[0] == 0  # so nothing claims it while we look
    code, out = _cli(capsys, "retry", "FR-300")
    assert code == 0 and "re-queued" in out
    assert (_jobs(capsys)["FR-300"]["state"], _jobs(capsys)["FR-300"]["error"]) == ("queued",
                                                                                   None)

    code, out = _cli(capsys, "cancel", "FR-300")
    assert code == 0 and "cancelled" in out
    assert _jobs(capsys)["FR-300"]["state"] == "cancelled"
    assert not worktree.exists()
    code, out = _cli(capsys, "cancel", "FR-300")
    assert code == 2 and "already cancelled" in out
