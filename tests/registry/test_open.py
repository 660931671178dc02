"""Opening a registry: URLs, directories, unreachable servers, threads."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from opus.errors import StoreError
from opus.registry import open_store
from opus.testing.store import memory_store
from tests.registry.factory import make_fr


def test_sqlite_file_gets_its_directory_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "opus.db"
    store = open_store(f"sqlite:///{db}")
    store.enqueue(make_fr(), Path("/repo"))
    store.close()
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = open_store(f"sqlite:///{db}")
    assert [j.fr_id for j in reopened.jobs()] == ["FR-001"]


def test_a_job_process_opens_the_existing_registry_without_writing(tmp_path: Path) -> None:
    """`create=False` (a job process, whose daemon made the tables) reads the registry
    and creates nothing."""
    db = tmp_path / "opus.db"
    daemon = open_store(f"sqlite:///{db}")
    daemon.enqueue(make_fr(), Path("/repo"))
    job = open_store(f"sqlite:///{db}", create=False)
    assert [j.fr_id for j in job.jobs()] == ["FR-001"]
    job.close()
    daemon.close()
    empty = tmp_path / "empty.db"
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{empty}", create=False).jobs()
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_unreachable_postgres_says_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on `port` now: the connection is refused at once.
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://postgres:secret@127.0.0.1:{port}/nope")
    message = str(caught.value)
    assert f"cannot reach postgresql at 127.0.0.1:{port}" in message
    assert "database.url" in message
    assert "secret" not in message


@pytest.mark.parametrize("url", ["not a url", "mysql://u@127.0.0.1/db"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError, match=r"database\.url"):
        open_store(url)


def test_unwritable_sqlite_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        open_store(f"sqlite:///{blocker / 'opus.db'}")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match=r"check database\.url"):
        open_store(f"sqlite:///{tmp_path / 'dir.db'}")


def test_memory_store_is_private_and_shared_across_threads() -> None:
    store = memory_store()
    assert memory_store().jobs() == []
    ids = {store.enqueue(make_fr(f"FR-{n}"), Path("/repo")).id for n in range(100)}
    claimed: list[int] = []

    def worker(name: str) -> None:
        while (job := store.claim(name, 60)) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert Counter(claimed) == Counter(ids)
