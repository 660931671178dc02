"""SPEC §4: every documented key exists with its default, and `OPUS_<SECTION>__<KEY>`
overrides it (nested keys, booleans, lists), on top of `opus.toml`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from opus.config import Settings, load_settings
from opus.vault import init_vault
from tests.e2e_cli.helpers import clean_env, run_opus

# SPEC §4's table, copied here so the test does not depend on a file outside the checkout.
SPEC_DEFAULTS: dict[str, Any] = {
    "vault.path": Path("vault"),
    "vault.move_notes": True,
    "daemon.state_dir": Path(".opus"),
    "daemon.max_concurrent": 3,
    "daemon.poll_active_s": 30,
    "daemon.poll_idle_s": 300,
    "database.url": None,
    "pipeline.max_iterations": 3,
    "pipeline.stage_timeout_s": 1800,
    "agents.engine": "anthropic",
    "agents.planner_model": None,
    "agents.coder_model": None,
    "agents.reviewer_model": None,
    "sandbox.kind": "bwrap",
    "sandbox.network": False,
    "git.default_repo": None,
    "git.remote": "origin",
    "git.branch_prefix": "opus/",
    "git.protected": ["main", "master"],
    "pr.provider": "local",
    "pr.api_url": None,
    "pr.token_env": "GITHUB_TOKEN",
    "pr.repository": None,
    "pr.poll_s": 120,
    "notify.urls": [],
    "budget.job_usd": 5,
    "budget.daily_usd": 50,
    "vault.features_dir": Path("10_features"),
    "vault.id_pattern": r"[A-Z][A-Z0-9]*-\d+",
    "vault.settle_s": 2,
    "pr.ci": "react",
    "pr.ci_rounds": 2,
    "pipeline.baseline": "fail",
    "pipeline.open_questions": "ask",
    "pipeline.approve_plan": "never",
    "daemon.stop_grace_s": 10,
}
SPEC_KEYS = [*SPEC_DEFAULTS, "agents.model"]


def _get(settings: Settings, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(settings, section), key)


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in __import__("os").environ if n.startswith("OPUS_")]:
        monkeypatch.delenv(name)
    return tmp_path


@pytest.mark.parametrize("key", list(SPEC_DEFAULTS))
def test_every_spec_key_has_its_default(key: str, empty_dir: Path) -> None:
    assert _get(load_settings(cwd=empty_dir), key) == SPEC_DEFAULTS[key]


def test_derived_defaults(empty_dir: Path) -> None:
    settings = load_settings(cwd=empty_dir)
    assert settings.database_url == f"sqlite:///{empty_dir / '.opus' / 'opus.db'}"
    assert re.fullmatch(r"claude-[a-z0-9.-]+", settings.agents.model)
    assert {settings.agents.model_for(r) for r in ("planner", "coder", "reviewer")} == {
        settings.agents.model
    }


def test_init_writes_every_spec_key_commented_under_its_section(empty_dir: Path) -> None:
    init_vault(empty_dir)
    text = (empty_dir / "opus.toml").read_text()
    sections = re.split(r"^\[(\w+)\]$", text, flags=re.M)
    keys = {f"{name}.{key}" for name, body in zip(sections[1::2], sections[2::2], strict=True)
            for key in re.findall(r"^# (\w+) = ", body, re.M)}
    assert set(SPEC_KEYS) <= keys
    # Uncommenting nothing gives the defaults: the file itself is valid.
    assert load_settings(cwd=empty_dir).daemon.max_concurrent == 3


def test_environment_overrides_nested_keys_lists_and_the_file(
    empty_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (empty_dir / "opus.toml").write_text(
        '[daemon]\nmax_concurrent = 5\npoll_idle_s = 7\n[git]\nremote = "upstream"\n'
    )
    monkeypatch.setenv("OPUS_DAEMON__MAX_CONCURRENT", "1")
    monkeypatch.setenv("OPUS_NOTIFY__URLS", '["json://127.0.0.1:9/"]')
    monkeypatch.setenv("OPUS_GIT__PROTECTED", '["main", "release"]')
    monkeypatch.setenv("OPUS_VAULT__MOVE_NOTES", "false")
    monkeypatch.setenv("OPUS_AGENTS__CODER_MODEL", "claude-opus-4-1")
    settings = load_settings(cwd=empty_dir)
    assert settings.daemon.max_concurrent == 1, "the environment beats the file"
    assert settings.daemon.poll_idle_s == 7, "keys the environment does not set stay"
    assert settings.git.remote == "upstream"
    assert settings.notify.urls == ["json://127.0.0.1:9/"]
    assert settings.git.protected == ["main", "release"]
    assert settings.vault.move_notes is False
    assert settings.agents.model_for("coder") == "claude-opus-4-1"
    assert settings.agents.model_for("planner") == settings.agents.model


def test_relative_paths_start_at_the_config_file(empty_dir: Path) -> None:
    config = empty_dir / "conf" / "opus.toml"
    config.parent.mkdir()
    config.write_text('[vault]\npath = "notes"\n[git]\ndefault_repo = "../code"\n')
    settings = load_settings(config, cwd=Path("/"))
    assert settings.vault_path == empty_dir / "conf" / "notes"
    assert settings.default_repo == empty_dir / "code"
    assert settings.state_dir == empty_dir / "conf" / ".opus"


def test_a_list_override_reaches_a_subprocess(tmp_path: Path) -> None:
    assert run_opus("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    env = clean_env(tmp_path, {"OPUS_NOTIFY__URLS": '["json://127.0.0.1:9/"]'})
    result = run_opus("doctor", cwd=tmp_path / "p", env=env)
    assert re.search(r"^\[ok  \] notify\s+1 URL\(s\)$", result.out, re.M), result.out
    bad = run_opus("doctor", cwd=tmp_path / "p",
                   env=clean_env(tmp_path, {"OPUS_NOTIFY__URLS": "json://not-a-list"}))
    assert bad.code == 2 and "OPUS_NOTIFY__URLS" in bad.err and "Traceback" not in bad.err


def _literal_keys() -> dict[str, list[str]]:
    """Every key whose type is a fixed set of values, with those values, from the models."""
    from typing import Literal, get_args, get_origin

    from pydantic import BaseModel

    found: dict[str, list[str]] = {}
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, field in model.model_fields.items():
            members = get_args(field.annotation) if get_origin(field.annotation) is not Literal \
                else (field.annotation,)
            values = [str(v) for m in members if get_origin(m) is Literal for v in get_args(m)]
            if values:
                found[f"{section}.{key}"] = values
    return found


def test_generated_opus_toml_lists_the_choices_of_every_enum_key(tmp_path: Path) -> None:
    init_vault(tmp_path)
    text = (tmp_path / "opus.toml").read_text()
    keys = _literal_keys()
    assert {"agents.engine", "sandbox.kind", "pr.provider", "pipeline.baseline"} <= set(keys)
    sections = re.split(r"^\[(\w+)\]$", text, flags=re.MULTILINE)
    by_section = dict(zip(sections[1::2], sections[2::2], strict=True))
    for dotted, values in keys.items():
        section, key = dotted.split(".")
        line = next(line for line in by_section[section].splitlines()
                    if line.startswith(f"# {key} = "))
        assert f"Choices: {', '.join(values)}" in line, (dotted, line)
    command = next(line for line in by_section["agents"].splitlines()
                   if line.startswith("# command = "))
    assert all(p in command for p in ("{role}", "{prompt_file}", "{output_file}")), command
