"""`opus.trace.mark`: milestones in a shared file when OPUS_TRACE names one, else nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opus.trace import VARIABLE, mark


def test_marks_are_appended_with_time_and_pid(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "trace.log"
    trace.write_text("1.0 1 earlier\n")
    monkeypatch.setenv(VARIABLE, str(trace))
    mark("ready")
    mark("claimed job 3")
    lines = trace.read_text().splitlines()
    assert lines[0] == "1.0 1 earlier"
    stamps = [line.split(" ", 2) for line in lines[1:]]
    assert [label for _at, _pid, label in stamps] == ["ready", "claimed job 3"]
    assert {int(pid) for _at, pid, _label in stamps} == {os.getpid()}
    assert float(stamps[0][0]) <= float(stamps[1][0])


def test_without_the_variable_nothing_is_written(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    mark("ready")
    assert list(tmp_path.iterdir()) == []
