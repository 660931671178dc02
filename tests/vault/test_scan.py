"""Scanning a real vault on disk: duplicates, dependencies, cycles and the cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opus.domain import FRStatus
from opus.errors import NoteError
from opus.vault import InvalidNote, NoteCache, scan_vault, write_fields
from tests.conftest import make_repo


def _note(vault: Path, rel: str, fr_id: str | None, *, status: str = "planned",
          deps: str = "[]", title: str = "Title") -> Path:
    path = vault / "10_features" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    id_line = f"id: {fr_id}\n" if fr_id else ""
    path.write_text(f"---\n{id_line}title: {title}\nstatus: {status}\ndepends_on: {deps}\n"
                    "---\nbody\n")
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    make_repo(tmp_path / "app")
    root = tmp_path / "vault"
    (root / "10_features").mkdir(parents=True)
    return root


def _errors(invalid: tuple[InvalidNote, ...]) -> dict[str, str]:
    return {n.path.name: n.error for n in invalid}


def test_scan_finds_notes_recursively_in_any_folder(vault: Path) -> None:
    _note(vault, "03_planned/a.md", "FR-1")
    _note(vault, "01_ideas/deep/er/b.md", "FR-2", status="draft")
    _note(vault, "06_done/FR-3.md", None, status="done")
    (vault / "10_features" / "03_planned" / ".a.md.123.opus-tmp").write_text("x")
    (vault / "10_features" / "03_planned" / "notes.txt").write_text("not a note")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    assert sorted(fr.id for fr in result.valid) == ["FR-1", "FR-2", "FR-3"]
    assert [fr.id for fr in result.planned] == ["FR-1"]
    assert result.planned[0].repo == vault.parent / "app"
    assert result.statuses["FR-3"] is FRStatus.DONE
    assert result.invalid == ()


def test_duplicate_ids_make_both_notes_invalid(vault: Path) -> None:
    _note(vault, "03_planned/one.md", "FR-1")
    _note(vault, "02_drafts/two.md", "FR-1", status="draft")
    _note(vault, "03_planned/three.md", "FR-3")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    errors = _errors(result.invalid)
    assert "duplicate id FR-1: also used by 10_features/02_drafts/two.md" in errors["one.md"]
    assert "duplicate id FR-1: also used by 10_features/03_planned/one.md" in errors["two.md"]
    assert [fr.id for fr in result.valid] == ["FR-3"]
    flagged = {n.path.name: n.should_flag for n in result.invalid}
    assert flagged == {"one.md": True, "two.md": False}


def test_dependency_cycle_names_the_cycle(vault: Path) -> None:
    _note(vault, "03_planned/a.md", "FR-1", deps="[FR-2]")
    _note(vault, "03_planned/b.md", "FR-2", deps='["[[FR-3]]"]')
    _note(vault, "03_planned/c.md", "FR-3", deps="[FR-1]")
    _note(vault, "03_planned/d.md", "FR-4", deps="[FR-1]")
    _note(vault, "03_planned/e.md", "FR-5", deps="[FR-5]")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    errors = _errors(result.invalid)
    assert "dependency cycle FR-1 → FR-2 → FR-3 → FR-1" in errors["a.md"]
    assert "dependency cycle FR-2 → FR-3 → FR-1 → FR-2" in errors["b.md"]
    assert "dependency cycle FR-3 → FR-1 → FR-2 → FR-3" in errors["c.md"]
    assert "dependency cycle FR-5 → FR-5" in errors["e.md"]
    assert [fr.id for fr in result.valid] == ["FR-4"]  # waits on FR-1, is not in the cycle


def test_cycle_through_a_draft_is_not_a_planned_cycle(vault: Path) -> None:
    _note(vault, "03_planned/a.md", "FR-1", deps="[FR-2]")
    _note(vault, "02_drafts/b.md", "FR-2", status="draft", deps="[FR-1]")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    assert result.invalid == ()


def test_dependency_on_a_missing_id(vault: Path) -> None:
    _note(vault, "03_planned/a.md", "FR-1", deps="[FR-9, FR-2]")
    _note(vault, "06_done/b.md", "FR-2", status="done")
    _note(vault, "02_drafts/c.md", "FR-3", status="draft", deps="[FR-404]")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    errors = _errors(result.invalid)
    assert list(errors) == ["a.md"]
    assert "depends_on names FR-9, which no note in the vault has" in errors["a.md"]


def test_wiki_link_to_a_note_name_resolves_to_its_id(vault: Path) -> None:
    _note(vault, "06_done/Rate limiter.md", "FR-45", status="done")
    _note(vault, "03_planned/a.md", "FR-1", deps='["[[Rate limiter|the limiter]]", "[[fr-45]]"]')
    result = scan_vault(vault, default_repo=vault.parent / "app")
    assert result.planned[0].depends_on == ("FR-45", "FR-45")


def test_invalid_note_keeps_its_id_for_duplicates_and_dependencies(vault: Path) -> None:
    _note(vault, "03_planned/a.md", "FR-1", deps="[FR-2]")
    broken = vault / "10_features" / "02_drafts" / "b.md"
    broken.parent.mkdir(parents=True)
    broken.write_text("---\nid: FR-2\nstatus: draft\ntitle: [oops\n---\n")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    assert [fr.id for fr in result.valid] == ["FR-1"]
    assert result.invalid[0].fr_id == "FR-2"
    assert "bad YAML" in result.invalid[0].error


def test_cache_skips_unchanged_files_and_sees_edits(vault: Path) -> None:
    first = _note(vault, "03_planned/a.md", "FR-1")
    _note(vault, "03_planned/b.md", "FR-2")
    cache = NoteCache()
    scan_vault(vault, default_repo=vault.parent / "app", cache=cache)
    assert (cache.hits, cache.misses) == (0, 2)
    scan_vault(vault, default_repo=vault.parent / "app", cache=cache)
    assert (cache.hits, cache.misses) == (2, 2)
    write_fields(first, {"status": "in-progress"}, move=False, vault_root=vault)
    result = scan_vault(vault, default_repo=vault.parent / "app", cache=cache)
    assert (cache.hits, cache.misses) == (3, 3)
    assert [fr.id for fr in result.planned] == ["FR-2"]
    os.remove(first)
    scan_vault(vault, default_repo=vault.parent / "app", cache=cache)
    assert len(cache) == 1
    assert "hits=4" in repr(cache)


def test_links_fifos_and_hidden_files_are_not_read(vault: Path) -> None:
    real = _note(vault, "03_planned/a.md", "FR-1")
    os.mkfifo(vault / "10_features" / "03_planned" / "pipe.md")  # reading it would block
    (vault / "10_features" / "03_planned" / "link.md").symlink_to(real)
    _note(vault, ".trash/old.md", "FR-1")
    result = scan_vault(vault, default_repo=vault.parent / "app")
    assert [fr.path.name for fr in result.valid] == ["a.md"]
    assert result.invalid == ()


def test_vault_without_features_folder(tmp_path: Path) -> None:
    with pytest.raises(NoteError, match="no 10_features/ folder; run `opus init`"):
        scan_vault(tmp_path, default_repo=None)
