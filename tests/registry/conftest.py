"""Registry fixtures: the same store on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.registry import Registry, open_store
from opus.testing.clock import FakeClock
from opus.testing.store import memory_store
from tests.registry.factory import private_pg_url

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL into a fresh, private schema on the test PostgreSQL."""
    with private_pg_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'opus.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest) -> str:
    """A fresh registry a reader can open too: a SQLite file, or a private schema on the
    test PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite"
                                       else "pg_schema_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Registry]:
    """A fresh registry on each backend, on a fake clock."""
    if request.param == "memory":
        registry = memory_store(clock)
    elif request.param == "sqlite":
        registry = open_store(request.getfixturevalue("sqlite_url"), clock=clock)
    else:
        registry = open_store(request.getfixturevalue("pg_schema_url"), clock=clock)
    try:
        yield registry
    finally:
        registry.close()
