"""The check shared by the daemon tests of a coder stage cut short after billed calls (an
API error, a SIGKILLed job process) and then run again to the PR: what the registry the
daemon shares and `opus status` say the job spent."""

from __future__ import annotations

import json

import pytest

from opus.config import AgentsConfig
from opus.domain import Job, Stage
from opus.engines.pricing import cost_usd
from tests.e2e_daemon.harness import Workspace
from tests.standins.billing import billed_usage
from tests.standins.messages_api import MessagesAPI

MODEL = AgentsConfig().model


def cut_coder_counted_once(ws: Workspace, api: MessagesAPI, job: Job, billed: list[str]) -> None:
    """The replies `billed` (ids) of the cut coder are in one failed code run; every reply
    the stand-in sent is in the job's cost, the runs' and the day's spend, once."""
    spent = billed_usage([sent for sent in api.replies if sent["id"] in billed])
    runs = ws.store.stage_runs(job.id)
    [failed] = [run for run in runs if not run.ok]
    assert (failed.stage, failed.usage) == (Stage.CODE, spent)
    assert failed.cost_usd == pytest.approx(cost_usd(MODEL, spent)) and failed.cost_usd > 0
    total = cost_usd(MODEL, billed_usage(api.replies))
    assert job.cost_usd == pytest.approx(total)
    assert sum(run.cost_usd for run in runs) == pytest.approx(total)
    code, shown = ws.cli("status", "--json")
    assert code == 0, shown
    assert json.loads(shown)["budget"]["spent_today_usd"] == pytest.approx(total, abs=1e-4)
