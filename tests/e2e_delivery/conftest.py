"""Fixtures for the delivery end-to-end tests: a forge stand-in per flavor, and its
bench (token in the environment, `pr.*` pointing at the stand-in)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opus.config import PRConfig
from tests.e2e_delivery.harness import TOKEN_ENV
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
