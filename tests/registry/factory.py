"""Feature requests for registry tests, and the PostgreSQL test schema."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opus.domain import FeatureRequest, FRStatus, Priority

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def make_fr(
    fr_id: str = "FR-001",
    body: str = "Add rate limiting.",
    *,
    title: str | None = None,
    priority: Priority = Priority.MEDIUM,
    status: FRStatus = FRStatus.PLANNED,
    depends_on: tuple[str, ...] = (),
) -> FeatureRequest:
    """A valid FR whose content hash follows its title and body, as the vault's does."""
    title = title or f"Title of {fr_id}"
    digest = hashlib.sha256(f"{title}\n{priority}\n{body}".encode()).hexdigest()
    return FeatureRequest(
        id=fr_id,
        title=title,
        status=status,
        path=Path(f"/vault/10_features/03_planned/{fr_id}.md"),
        body=body,
        content_hash=digest,
        priority=priority,
        depends_on=depends_on,
        test_command="pytest -q",
        allowed_paths=("src/**",),
        budget_usd=2.5,
    )


def new_pg_schema() -> str | None:
    """Create a private schema on the test server; None when the server is unreachable."""
    import psycopg

    name = f"opus_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
    except psycopg.OperationalError:
        return None
    return name


def drop_pg_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def private_pg_url() -> Iterator[str]:
    """A URL into a fresh private schema on the test PostgreSQL, dropped afterwards; the
    test is skipped when the server is unreachable."""
    schema = new_pg_schema()
    if schema is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 (database test) is unreachable")
    try:
        yield pg_url(schema)
    finally:
        drop_pg_schema(schema)


def pg_url(schema: str) -> str:
    """A URL whose connections use `schema` only, so parallel runs never share tables."""
    return f"{PG_SERVER}?options=-csearch_path%3D{schema}"
