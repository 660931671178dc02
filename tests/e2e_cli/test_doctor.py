"""`opus doctor` on a fresh project: every check listed, failures named, exit code honest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opus.cli import main
from tests.conftest import make_repo
from tests.e2e_cli.helpers import clean_env, run_opus

CHECKS = [
    "config", "vault", "git", "repo", "sandbox", "limits", "engine", "forge", "notify", "database",
]  # fmt: skip
LINE = re.compile(r"^\[(ok  |WARN|FAIL)\] (\w+)\s+(.*)$")


def _levels(output: str) -> dict[str, tuple[str, str]]:
    found = [LINE.match(line) for line in output.splitlines()]
    return {m[2]: (m[1].strip(), m[3]) for m in found if m}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    return tmp_path / "p"


def test_fresh_project_without_a_key_fails_naming_anthropic_api_key(
    project: Path, tmp_path: Path
) -> None:
    result = run_opus("doctor", cwd=project, env=clean_env(tmp_path))
    assert result.code == 1, result.err
    levels = _levels(result.out)
    assert list(levels) == CHECKS
    assert levels["engine"][0] == "FAIL" and "ANTHROPIC_API_KEY" in levels["engine"][1]
    assert levels["repo"][0] == "WARN" and "git.default_repo" in levels["repo"][1]
    assert levels["config"] == ("ok", f"loaded from {project / 'opus.toml'}")
    assert levels["vault"][0] == "ok" and "(1 notes)" in levels["vault"][1]


def test_with_a_key_and_a_repo_it_passes_with_warnings(project: Path, tmp_path: Path) -> None:
    make_repo(project / "code")
    env = clean_env(tmp_path, {
        "ANTHROPIC_API_KEY": "sk-test",
        "OPUS_GIT__DEFAULT_REPO": "code",
        "OPUS_SANDBOX__KIND": "none",
    })
    result = run_opus("doctor", cwd=project, env=env)
    assert result.code == 0, result.out + result.err
    levels = _levels(result.out)
    assert list(levels) == CHECKS
    assert not [name for name, (level, _) in levels.items() if level == "FAIL"]
    assert levels["repo"] == ("ok", f"default repo {project / 'code'}")
    # An unsandboxed run works but must never look fine.
    assert levels["sandbox"][0] == "WARN" and "WITHOUT isolation" in levels["sandbox"][1]
    assert levels["notify"][0] == "WARN"


def test_bwrap_sandbox_is_really_tried(project: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    main(["doctor"])
    sandbox = _levels(capsys.readouterr().out)["sandbox"]
    assert sandbox[0] == "ok" and sandbox[1].startswith("bwrap ") and "network off" in sandbox[1]


def test_broken_parts_are_failures_that_say_what_to_fix(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    (project / "not-a-repo").mkdir()
    monkeypatch.setenv("OPUS_GIT__DEFAULT_REPO", "not-a-repo")
    monkeypatch.setenv("OPUS_PR__PROVIDER", "github")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("OPUS_NOTIFY__URLS", '["nosuchscheme://x"]')
    monkeypatch.setenv("OPUS_VAULT__PATH", "elsewhere")
    assert main(["doctor"]) == 1
    levels = _levels(capsys.readouterr().out)
    assert levels["repo"][0] == "FAIL" and "not a git repository" in levels["repo"][1]
    assert levels["forge"][0] == "FAIL" and "GITHUB_TOKEN" in levels["forge"][1]
    assert levels["notify"][0] == "FAIL" and "nosuchscheme" in levels["notify"][1]
    assert levels["vault"][0] == "FAIL" and "opus init" in levels["vault"][1]
    assert levels["database"][0] == "ok"
