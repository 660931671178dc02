"""Exit codes of SPEC §3: 0 ok, 1 runtime failure, 2 usage or config error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.cli import main
from tests.e2e_cli.helpers import clean_env, run_opus


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `opus init` project, the working directory of the in-process CLI."""
    assert main(["init", str(tmp_path / "p")]) == 0
    monkeypatch.chdir(tmp_path / "p")
    for name in ("OPUS_DAEMON__MAX_CONCURRENT", "OPUS_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "p"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_bad_env_value_exits_2_naming_key_value_and_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPUS_DAEMON__MAX_CONCURRENT", "abc")
    code, out = _run(capsys, "status")
    assert code == 2
    assert "daemon.max_concurrent" in out and "'abc'" in out
    assert "OPUS_DAEMON__MAX_CONCURRENT" in out and "integer" in out


def test_out_of_range_value_says_what_is_allowed(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPUS_DAEMON__MAX_CONCURRENT", "0")
    code, out = _run(capsys, "status")
    assert code == 2
    assert "daemon.max_concurrent" in out and "greater than or equal to 1" in out


def test_unknown_key_in_opus_toml_exits_2_naming_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project / "opus.toml"
    text = config.read_text()
    assert text.count("[daemon]\n") == 1, "opus init writes the [daemon] table"
    config.write_text(text.replace("[daemon]\n", "[daemon]\nmax_concurent = 2\n"))
    code, out = _run(capsys, "status")
    assert code == 2
    assert "daemon.max_concurent" in out and str(config) in out
    assert "valid keys in [daemon]:" in out and "max_concurrent" in out


def test_status_outside_a_project_exits_2_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPUS_DATABASE__URL", raising=False)
    code, out = _run(capsys, "status")
    assert code == 2
    assert "no opus.toml" in out and "--config" in out
    assert list(tmp_path.iterdir()) == []


def test_invalid_toml_exits_2_naming_the_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "broken.toml").write_text("[daemon\nmax_concurrent = 2\n")
    code, out = _run(capsys, "--config", "broken.toml", "doctor")
    assert code == 2
    assert "broken.toml" in out and "not valid TOML" in out and "line 1" in out


def test_missing_config_file_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "--config", "nowhere.toml", "status")
    assert code == 2
    assert "nowhere.toml does not exist" in out


def test_unknown_fr_for_retry_cancel_and_logs_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("retry", "cancel", "logs"):
        for name in ("FR-404", "404"):
            code, out = _run(capsys, command, name)
            assert code == 2, (command, name, out)
            assert f"no job for {name!r}" in out and "opus status" in out


def test_a_misspelt_key_in_a_variable_names_the_variable_not_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPUS_DAEMON__MAX_CONCURENT", "1")
    code, out = _run(capsys, "status")
    assert code == 2
    assert "environment variable OPUS_DAEMON__MAX_CONCURENT" in out
    assert "opus.toml" not in out and "valid keys in [daemon]:" in out


def test_a_variable_naming_no_section_is_an_error_not_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPUS_DEAMON__MAX_CONCURRENT", "1")
    code, out = _run(capsys, "status")
    assert code == 2
    assert "OPUS_DEAMON__MAX_CONCURRENT names no config section" in out and "daemon" in out


def test_a_bad_value_in_the_file_names_the_file_and_the_variable_that_would_override_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project / "opus.toml"
    config.write_text(config.read_text().replace("[daemon]\n", "[daemon]\nmax_concurrent = 0\n"))
    code, out = _run(capsys, "status")
    assert code == 2
    where = f"config key `daemon.max_concurrent` in {config}"
    assert f"{where} (or $OPUS_DAEMON__MAX_CONCURRENT)" in out


def test_unreachable_database_is_a_runtime_failure(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    monkeypatch.setenv("OPUS_DATABASE__URL", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    code, out = _run(capsys, "status")
    assert code == 1
    assert "127.0.0.1:1" in out and "database.url" in out


def test_usage_errors_exit_2_as_a_subprocess(tmp_path: Path) -> None:
    env = clean_env(tmp_path, {"OPUS_SANDBOX__KIND": "docker"})
    bad_choice = run_opus("status", cwd=tmp_path, env=env)
    assert bad_choice.code == 2
    assert "sandbox.kind" in bad_choice.err and "'bwrap' or 'none'" in bad_choice.err
    assert "Traceback" not in bad_choice.err
    unknown = run_opus("frobnicate", cwd=tmp_path)
    assert unknown.code == 2 and "invalid choice" in unknown.err
