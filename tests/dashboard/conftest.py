"""Dashboard fixtures: a project on a SQLite file or on a private PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.dashboard.server import DashboardServer
from tests.dashboard.helpers import Project, make_project, serving
from tests.registry.factory import drop_pg_schema, new_pg_schema, pg_url


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
    schema = None
    if request.param == "postgres":
        schema = new_pg_schema()
        if schema is None:
            pytest.skip("PostgreSQL at 127.0.0.1:5432 (database test) is unreachable")
    made = make_project(tmp_path, pg_url(schema) if schema else None)
    try:
        yield made
    finally:
        made.close()
        if schema is not None:
            drop_pg_schema(schema)
