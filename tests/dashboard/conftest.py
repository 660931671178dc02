"""Dashboard fixtures: a project on a SQLite file or on a private PostgreSQL schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.dashboard.server import DashboardServer
from tests.dashboard.helpers import Project, make_project, serving
from tests.registry.factory import private_pg_url


@pytest.fixture
def served(project: Project) -> Iterator[DashboardServer]:
    with serving(project.context()) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = make_project(tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The same project on each registry backend."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(private_pg_url()) if request.param == "postgres" else None
        made = make_project(tmp_path, url)
        stack.callback(made.close)
        yield made
