"""Job log files (write, read, follow) and journald-friendly stderr logging."""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.daemon.logs import (
    HTTP_CLIENT_LOGGERS,
    JobLog,
    configure_logging,
    follow,
    log_path,
    read_log,
)
from opus.errors import ConfigError, NotFound
from opus.testing.clock import FakeClock
from tests.standins.messages_api import API_KEY, MessagesAPI, reply, text


def test_write_and_read_timestamped_lines(tmp_path: Path) -> None:
    clock = FakeClock()
    log = JobLog.for_job(tmp_path, 7, clock=clock)
    log.write("stage plan started")
    clock.advance(61)
    log.write("tool bash: pytest -q\nexit 1")

    assert log.path == tmp_path / "logs" / "job-7.log" == log_path(tmp_path, 7)
    assert read_log(log.path) == (
        "2026-01-01T00:00:00Z stage plan started\n"
        "2026-01-01T00:01:01Z tool bash: pytest -q\n"
        "    exit 1\n"
    )


def test_read_missing_log_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="opus status"):
        read_log(tmp_path / "logs" / "job-1.log")


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    logs = [JobLog(path, clock=FakeClock()) for _ in range(4)]

    def writer(index: int) -> None:
        for n in range(200):
            logs[index].write(f"writer {index} line {n:03d} " + "x" * 200)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    lines = read_log(path).splitlines()
    assert len(lines) == 800
    assert all(line.endswith("x" * 200) and " writer " in line for line in lines)
    for index in range(4):
        own = [line for line in lines if f"writer {index} " in line]
        assert [line.split()[4] for line in own] == [f"{n:03d}" for n in range(200)]


def _follow_collect(path: Path, script: list[bytes], rounds: int) -> list[str]:
    """Follow `path` while a 'writer' appends one chunk of `script` per poll round."""
    pending: Iterator[bytes] = iter(script)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > rounds

    def sleep(_seconds: float) -> None:
        chunk = next(pending, None)
        if chunk == b"<truncate>":
            path.write_bytes(b"")
        elif chunk is not None:
            with path.open("ab") as fh:
                fh.write(chunk)

    return list(follow(path, stop=stop, poll_s=0.01, sleep=sleep))


def test_follow_yields_existing_then_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    path.write_bytes(b"one\ntwo\n")
    lines = _follow_collect(path, [b"thr", b"ee\nfour\n", b"", b"tail without newline"], 6)
    assert lines == ["one", "two", "three", "four", "tail without newline"]


def test_follow_waits_for_the_file_and_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    lines = _follow_collect(path, [b"", b"first\n", b"<truncate>", b"again\n"], 6)
    assert lines == ["first", "again"]


def test_follow_ends_when_stop_is_true_in_real_time(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    JobLog(path).write("hello")
    done = threading.Event()
    seen: list[str] = []

    def consume() -> None:
        seen.extend(follow(path, stop=done.is_set, poll_s=0.01))

    thread = threading.Thread(target=consume)
    thread.start()
    JobLog(path).write("world")
    done.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert [line.split(" ", 1)[1] for line in seen] == ["hello", "world"]


def _journal_env(stream: io.TextIOWrapper) -> dict[str, str]:
    info = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


def test_journald_form_has_priorities_and_no_timestamps(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w+") as stream:
        handler = configure_logging("DEBUG", environ=_journal_env(stream), stream=stream)
        try:
            logging.getLogger("opus.test").warning("disk nearly full")
            logging.getLogger("opus.test").debug("tick")
            handler.flush()
            stream.seek(0)
            assert stream.read() == "<4>opus.test: disk nearly full\n<7>opus.test: tick\n"
        finally:
            logging.getLogger().removeHandler(handler)


def test_terminal_form_has_timestamps_and_replaces_its_handler(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w+") as stream:
        configure_logging("INFO", environ={"JOURNAL_STREAM": "1:2"}, stream=stream)
        handler = configure_logging("INFO", environ={}, stream=stream)
        try:
            logging.getLogger("opus.test").info("started")
            logging.getLogger("opus.test").debug("hidden")
            stream.seek(0)
            [line] = stream.read().splitlines()
            assert line.endswith(" INFO opus.test: started") and line[:4].isdigit()
            assert [h.get_name() for h in logging.getLogger().handlers].count("opus-stderr") == 1
        finally:
            logging.getLogger().removeHandler(handler)


def test_unknown_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LOUD"):
        configure_logging("LOUD", environ={}, stream=io.StringIO())


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_each_model_request_is_logged_only_at_debug(
    tmp_path: Path, level: str, shown: bool
) -> None:
    import anthropic

    before = {name: logging.getLogger(name).level for name in HTTP_CLIENT_LOGGERS}
    with (tmp_path / "stderr").open("w+") as stream, MessagesAPI(
        [reply(text("hi"))], require_tools=False
    ) as api:
        handler = configure_logging(level, environ={}, stream=stream)
        try:
            client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=0)
            client.messages.create(model="claude-sonnet-4-6", max_tokens=16,
                                   messages=[{"role": "user", "content": "hello"}])
            logging.getLogger("opus.test").warning("after the call")
            stream.seek(0)
            said = stream.read()
        finally:
            logging.getLogger().removeHandler(handler)
            for name, old in before.items():
                logging.getLogger(name).setLevel(old)
    assert "WARNING opus.test: after the call" in said
    assert ("HTTP Request: POST " + api.base_url in said) is shown, said
