"""`opus init`: skeleton, commented config, example FR; idempotent, never overwrites."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from opus.config import Settings, load_settings
from opus.domain import FRStatus
from opus.vault import init_targets, init_vault, render_config, scan_vault, write_fields
from tests.conftest import make_repo

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_init_creates_the_spec_skeleton(tmp_path: Path) -> None:
    created = init_vault(tmp_path / "proj")
    assert set(created) == set(init_targets(tmp_path / "proj"))
    vault = tmp_path / "proj" / "vault"
    for folder in ("01_ideas", "02_drafts", "03_planned", "04_in_progress", "05_review",
                   "06_done", "07_failed"):
        assert (vault / "10_features" / folder).is_dir()
    readme = (vault / "00_system" / "prompts" / "README.md").read_text()
    assert all(name in readme for name in ("planner.md", "coder.md", "reviewer.md"))
    assert (tmp_path / "proj" / "opus.toml").is_file()


def test_init_is_idempotent_and_never_overwrites(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "opus.toml").write_text("[daemon]\nmax_concurrent = 1\n")
    with caplog.at_level(logging.INFO, logger="opus.vault.init"):
        created = init_vault(project)
    assert project / "opus.toml" not in created
    assert "opus.toml exists; left alone" in caplog.text
    assert (project / "opus.toml").read_text() == "[daemon]\nmax_concurrent = 1\n"
    example = project / "vault" / "10_features" / "02_drafts" / "FR-001.md"
    example.write_text("my own edits")
    assert init_vault(project) == []
    assert example.read_text() == "my own edits"
    example.unlink()
    assert init_vault(project) == [example]


def test_settings_from_a_fresh_project_are_the_defaults(tmp_path: Path) -> None:
    init_vault(tmp_path)
    settings = load_settings(cwd=tmp_path)
    assert settings.vault_path == tmp_path.resolve() / "vault"
    assert settings.model_dump() == Settings().model_dump()


def _fields(model: type[Settings]) -> set[str]:
    keys: set[str] = set()
    for section, info in model.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        if sub is not None:
            keys.update(f"{section}.{key}" for key in sub)
    return keys


def test_config_template_lists_every_key_with_its_default(tmp_path: Path) -> None:
    text = render_config()
    section = ""
    listed: set[str] = set()
    uncommented: list[str] = []
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            uncommented.append(line)
        match = re.match(r"# (\w+) = ", line)
        if match:
            listed.add(f"{section}.{match.group(1)}")
            if "(not set)" not in line:
                uncommented.append(line[2:])
    assert listed == _fields(Settings)
    config = tmp_path / "opus.toml"
    config.write_text("\n".join(uncommented))
    assert load_settings(config).model_dump() == Settings().model_dump()


def test_example_fr_is_a_valid_draft_and_runs_once_planned(tmp_path: Path) -> None:
    init_vault(tmp_path)
    vault = tmp_path / "vault"
    result = scan_vault(vault, default_repo=None)
    assert [(fr.id, fr.status) for fr in result.valid] == [("FR-001", FRStatus.DRAFT)]
    repo = make_repo(tmp_path / "app")
    write_fields(result.valid[0].path, {"status": "planned"}, move=True, vault_root=vault)
    result = scan_vault(vault, default_repo=repo)
    assert [fr.id for fr in result.planned] == ["FR-001"]
    assert result.planned[0].path.parent.name == "03_planned"
    assert "# repo: ../my-app" in result.planned[0].path.read_text()


def test_repository_example_vault_matches_init_and_scans_clean(tmp_path: Path) -> None:
    shipped = REPO_ROOT / "vault"
    for path, content in init_targets(tmp_path).items():
        if path.is_relative_to(tmp_path / "vault"):
            assert (shipped / path.relative_to(tmp_path / "vault")).read_bytes() == content
    assert not (REPO_ROOT / "opus.toml").exists()
    result = scan_vault(shipped, default_repo=None)
    assert result.invalid == ()
    by_id = {fr.id: fr for fr in result.valid}
    assert sorted(by_id) == ["FR-001", "FR-002", "FR-003"]
    assert by_id["FR-003"].depends_on == ("FR-002",)
    assert {fr.status for fr in result.valid} == {FRStatus.DRAFT}
