"""Fixtures for the daemon end-to-end tests: the agency behind the stand-in, workspaces,
daemon subprocesses (always killed), and a loopback sink for apprise's json://."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_daemon.agency import Agency, start_api
from tests.e2e_daemon.harness import Daemons, Workspace, outputs
from tests.ops.httpsink import Sink, http_sink
from tests.registry.factory import private_pg_url
from tests.standins.messages_api import MessagesAPI


@pytest.fixture
def pg_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose registry is a private schema on the test PostgreSQL."""
    with private_pg_url() as url:
        yield Workspace(tmp_path, database_url=url)


@pytest.fixture
def agency() -> Agency:
    return Agency()


@pytest.fixture
def api(agency: Agency) -> Iterator[MessagesAPI]:
    server = start_api(agency)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def daemons(api: MessagesAPI, request: pytest.FixtureRequest) -> Iterator[Daemons]:
    running = Daemons(api.base_url)
    try:
        yield running
    finally:
        running.kill_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print("\n".join(outputs(running)))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def sink() -> Iterator[Sink]:
    with http_sink() as server:
        yield server


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
