"""Fixtures for the delivery end-to-end tests: a forge stand-in per flavor, and its
bench (token in the environment, `pr.*` pointing at the stand-in)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from opus.config import PRConfig
from tests.e2e_delivery.harness import BENCHES, TOKEN_ENV, account
from tests.standins.forge import Flavor, ForgeStandin


@pytest.fixture(params=["github", "gitea"])
def forge(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ForgeStandin]:
    """A strict GitHub or Gitea stand-in on 127.0.0.1, its token in `$TOKEN_ENV`."""
    flavor: Flavor = request.param
    with ForgeStandin(flavor) as server:
        monkeypatch.setenv(TOKEN_ENV, server.token)
        yield server


def forge_config(forge: ForgeStandin) -> PRConfig:
    return PRConfig(
        provider=forge.flavor, api_url=forge.api_url, token_env=TOKEN_ENV,
        repository=f"{forge.owner}/{forge.name}",
    )  # fmt: skip


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failed test's report carries what each of its jobs did (stage runs, events,
    job log): a failure seen once in a loaded run can be read afterwards."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for n, bench in enumerate(BENCHES):
            try:
                text = account(bench)
            except Exception as exc:  # the report must not hide the failure
                text = f"could not read the bench: {exc!r}"
            report.sections.append((f"bench {n} jobs", text))
    if report.when == "teardown":
        BENCHES.clear()
