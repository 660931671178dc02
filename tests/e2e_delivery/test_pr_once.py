"""A PR is opened once, whatever happens between the push and the POST that opens it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.domain import JobState
from opus.errors import ForgeError
from opus.pipeline.executor import Outcome
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import Bench, make_bench
from tests.standins.forge import ForgeStandin


def _bench(tmp_path: Path, forge: ForgeStandin) -> Bench:
    return make_bench(tmp_path, pr=forge_config(forge))


def _opened(forge: ForgeStandin) -> list[int]:
    return [r.status for r in forge.posts("/repos/acme/widgets/pulls")]


@pytest.mark.parametrize("lost_reply", [False, True], ids=["fails-before", "reply-lost"])
def test_pr_opened_once_across_a_restart_between_push_and_create(
    tmp_path: Path, forge: ForgeStandin, lost_reply: bool
) -> None:
    bench = _bench(tmp_path, forge)
    bench.write_fr()
    job = bench.enqueue()
    forge.fail_once("POST", "/pulls", after=lost_reply)

    first = bench.work()

    assert isinstance(first, ForgeError), first
    assert "HTTP 502" in str(first)
    stopped = bench.store.get(job.id)
    assert stopped.state is JobState.QUEUED  # released for a retry, not failed
    assert bench.remote_head(stopped.branch or "") is not None  # the push happened

    second = bench.work()

    assert isinstance(second, Outcome) and second.kind == "awaiting_review"
    assert _opened(forge) == ([502] if lost_reply else [502, 201])
    assert len(forge.prs) == 1
    pr = forge.prs[1]
    done = bench.store.get(job.id)
    assert done.state is JobState.AWAITING_REVIEW
    assert done.pr_url == forge.pr_json(pr)["html_url"]
    assert pr.head == done.branch and pr.base == "main"
    assert pr.title == "FR-1: Add greeting"
    for told in (
        "Say hi to users.",
        "FR-1.md",
        "Add greet() in src/app.py.",
        "Write src/app.py",
        "`python3 check.py` passed (exit 0",
        "**approve**",
        "Small and correct.",
        "1 code→test→review round, cost $0.00",
    ):
        assert told in pr.body, told
    assert forge.unexpected == []


def test_a_plain_redelivery_finds_the_pr_instead_of_opening_another(
    tmp_path: Path, forge: ForgeStandin
) -> None:
    bench = _bench(tmp_path, forge)
    bench.write_fr()
    job = bench.enqueue()
    assert bench.work() == Outcome("awaiting_review", bench.store.get(job.id).pr_url or "")

    # The registry lost the deliver checkpoint (e.g. a crash right after the PR opened):
    # the job is queued again and the deliver stage runs a second time.
    from opus.pipeline.delivering import deliver_job
    from opus.pipeline.worktree import Worktree

    job = bench.store.get(job.id)
    wt = Worktree.ensure(
        job.repo, bench.ctx.settings.state_dir, job.id, job.branch or "", job.base, remote="origin"
    )
    runs = [run for run in bench.store.stage_runs(job.id) if run.ok]
    again = deliver_job(job, bench.ctx, wt, [r for r in runs if r.stage.value != "deliver"], 1)

    assert again.url == job.pr_url
    assert _opened(forge) == [201]
    assert forge.unexpected == []
