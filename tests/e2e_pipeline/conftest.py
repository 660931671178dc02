"""Fixtures: the Messages-API stand-in (the real SDK finds it through the environment)
and a fresh project per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_pipeline.harness import Project, make_project
from tests.standins.messages_api import API_KEY, MessagesAPI


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesAPI]:
    with MessagesAPI() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)
