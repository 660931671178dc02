"""Write-back: only opus's keys change, atomically, merged with the user's edits."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from opus.errors import NoteError
from opus.vault import write_fields
from opus.vault.text import OPUS_KEYS, load_frontmatter, split_note
from opus.vault.write import replace_if_unchanged

NOTE = (
    "---\n"
    "id: FR-1   # keep me\n"
    "title: 'Quoted: title'\n"
    "status: planned             # draft | planned\n"
    "tags:\n  - a\n\n  - b\n"
    "# a comment about error\n"
    "error: |\n  old\n  text\n"
    "---\n"
    "# Body\n\n---\nnot frontmatter\n"
)


def _vault(tmp_path: Path) -> Path:
    folder = tmp_path / "vault" / "10_features" / "03_planned"
    folder.mkdir(parents=True)
    return tmp_path / "vault"


def _meta(path: Path) -> dict[str, object]:
    loaded = load_frontmatter(split_note(path.read_text(encoding="utf-8")))
    assert isinstance(loaded, dict)
    return loaded


def test_replaces_appends_and_removes_only_opus_keys(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text(NOTE)
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    write_fields(note, {"status": "in-progress", "job": 7, "updated": stamp, "error": None},
                 move=False, vault_root=tmp_path)
    text = note.read_text()
    assert text == NOTE.replace("status: planned ", "status: in-progress ").replace(
        "error: |\n  old\n  text\n", f"job: 7\nupdated: {stamp.isoformat()}\n")
    meta = _meta(note)
    assert (meta["status"], meta["job"], meta["updated"]) == ("in-progress", 7, stamp)
    assert "error" not in meta


def test_error_is_one_quoted_line(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text(NOTE)
    message = "bad YAML: line 3\n  fix it # please"
    write_fields(note, {"status": "invalid", "error": message}, move=False, vault_root=tmp_path)
    assert _meta(note)["error"] == "bad YAML: line 3 fix it # please"
    assert sum(line.startswith("error:") for line in note.read_text().splitlines()) == 1


def test_crlf_and_bom_are_kept(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    original = "\ufeff" + NOTE.replace("\n", "\r\n")
    note.write_bytes(original.encode())
    write_fields(note, {"stage": "code"}, move=False, vault_root=tmp_path)
    data = note.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf---\r\n")
    assert b"stage: code\r\n---\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_note_without_frontmatter_gets_one(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_bytes(b"just a thought\nno newline at end")
    write_fields(note, {"status": "invalid", "error": "missing id"}, move=False,
                 vault_root=tmp_path)
    assert note.read_bytes() == (
        b"---\nstatus: invalid\nerror: missing id\n---\njust a thought\nno newline at end"
    )


def test_foreign_keys_and_bad_values_are_refused(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text(NOTE)
    with pytest.raises(NoteError, match=r"opus may write only .* not title"):
        write_fields(note, {"title": "x"}, move=False, vault_root=tmp_path)
    with pytest.raises(NoteError, match="cannot write status 'bogus'"):
        write_fields(note, {"status": "bogus"}, move=False, vault_root=tmp_path)
    with pytest.raises(NoteError, match="no longer exists"):
        write_fields(tmp_path / "gone.md", {"stage": "code"}, move=False, vault_root=tmp_path)
    assert note.read_text() == NOTE


def test_flow_mapping_frontmatter_is_not_corrupted(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\n{id: FR-1, title: x}\n---\nbody\n")
    with pytest.raises(NoteError, match="one `key: value` per line"):
        write_fields(note, {"status": "done"}, move=False, vault_root=tmp_path)
    assert note.read_text() == "---\n{id: FR-1, title: x}\n---\nbody\n"


def test_broken_yaml_can_still_be_marked_invalid(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\nid: FR-1\ntitle: a: b\nstatus: planned\n---\nbody\n")
    write_fields(note, {"status": "invalid", "error": "bad YAML"}, move=False,
                 vault_root=tmp_path)
    assert note.read_text() == (
        "---\nid: FR-1\ntitle: a: b\nstatus: invalid\nerror: bad YAML\n---\nbody\n"
    )


def test_users_concurrent_edit_survives(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text(NOTE)
    read_by_opus = note.read_bytes()
    # The user saves while opus is deciding what to write.
    note.write_text(NOTE.replace("title: 'Quoted: title'", "title: New title")
                    .replace("# Body", "# Body edited"))
    write_fields(note, {"status": "in-progress", "job": 3}, move=False, vault_root=tmp_path)
    meta = _meta(note)
    assert (meta["title"], meta["status"], meta["job"]) == ("New title", "in-progress", 3)
    assert "# Body edited" in note.read_text()
    assert note.read_bytes() != read_by_opus


def test_replace_refuses_when_the_file_changed_since_read(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("v1")
    note.write_text("v2 by the user")
    assert replace_if_unchanged(note, b"v1", b"opus") is False
    assert note.read_text() == "v2 by the user"
    assert replace_if_unchanged(note, b"v2 by the user", b"opus") is True
    assert note.read_text() == "opus"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.md"]


def test_writes_race_with_a_user_saving_in_a_loop(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\nid: FR-1\ntitle: x\n---\nbody 0\n")
    stop = threading.Event()

    def user() -> None:
        count = 0
        while not stop.is_set() and count < 2000:
            count += 1
            text = note.read_text()
            # the user's editor: change the body, keep the frontmatter it read
            replace_if_unchanged(note, text.encode(), text.replace(
                text[text.rindex("body"):], f"body {count}\n").encode())
            time.sleep(0.001)  # an editor saving often, not a busy loop
        stop.set()

    thread = threading.Thread(target=user)
    thread.start()
    try:
        for job in range(30):
            write_fields(note, {"job": job}, move=False, vault_root=tmp_path)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert _meta(note)["job"] == 29
    assert [p.name for p in tmp_path.iterdir()] == ["n.md"]


def test_move_into_status_folder(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    note = vault / "10_features" / "03_planned" / "FR-1.md"
    note.write_text(NOTE)
    moved = write_fields(note, {"status": "done"}, move=True, vault_root=vault)
    assert moved == vault / "10_features" / "06_done" / "FR-1.md"
    assert not note.exists()
    assert _meta(moved)["status"] == "done"
    assert write_fields(moved, {"job": 1}, move=True, vault_root=vault) == moved


def test_move_never_clobbers_another_note(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    done = vault / "10_features" / "06_done"
    done.mkdir()
    (done / "FR-1.md").write_text("someone else")
    (done / "FR-1 (2).md").write_text("and another")
    note = vault / "10_features" / "03_planned" / "FR-1.md"
    note.write_text(NOTE)
    moved = write_fields(note, {"status": "done"}, move=True, vault_root=vault)
    assert moved == done / "FR-1 (3).md"
    assert (done / "FR-1.md").read_text() == "someone else"
    assert (done / "FR-1 (2).md").read_text() == "and another"
    assert sorted(p.name for p in done.iterdir()) == ["FR-1 (2).md", "FR-1 (3).md", "FR-1.md"]


def test_note_in_a_subfolder_of_its_status_folder_stays(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    team = vault / "10_features" / "03_planned" / "team-a"
    team.mkdir()
    note = team / "FR-1.md"
    note.write_text(NOTE)
    assert write_fields(note, {"status": "planned"}, move=True, vault_root=vault) == note


def test_file_mode_is_kept(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text(NOTE)
    note.chmod(0o640)
    write_fields(note, {"job": 1}, move=False, vault_root=tmp_path)
    assert note.stat().st_mode & 0o777 == 0o640


def test_written_values_parse_back_exactly(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    values: list[object] = ["yes", "null", "2024-01-01", "- x", "a: b", "x #y", " pad ", "",
                            "'", '"', "\\", "é ü \u2028 \x85", "[1]", "{a}", "*a", "!tag", "%",
                            "@", "`", "12", "1.5", "true", 0, -3, 1.25]
    for value in values:
        note.write_text(NOTE)
        write_fields(note, {"branch": value}, move=False, vault_root=tmp_path)
        assert _meta(note)["branch"] == value, value
        assert yaml.safe_load(note.read_text().split("---\n")[1]) is not None


def test_opus_keys_are_the_spec_list() -> None:
    assert frozenset({"status", "job", "stage", "branch", "pr", "updated", "error"}) == OPUS_KEYS
