"""Write-back: only opus's keys change, atomically, merged with the user's edits."""

from __future__ import annotations

import os
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
    # opus's keys read back as the text written (no YAML 1.1 typing)
    assert (meta["status"], meta["job"], meta["updated"]) == ("in-progress", "7",
                                                              stamp.isoformat())
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


@pytest.mark.parametrize("data", [
    b"just a thought\nno newline at end",
    b"---\n\nA note that opens with a horizontal rule.\n",
    b"---\nid: FR-1\nstatus: planned\nno closing line\n",
])
def test_no_frontmatter_is_ever_added(tmp_path: Path, data: bytes) -> None:
    note = tmp_path / "n.md"
    note.write_bytes(data)
    with pytest.raises(NoteError, match="never adds one"):
        write_fields(note, {"status": "invalid", "error": "missing id"}, move=False,
                     vault_root=tmp_path)
    assert note.read_bytes() == data


def test_only_the_head_of_a_huge_or_latin1_note_is_edited(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    body = b"caf\xe9 " * 300_000  # Latin-1 bytes, 2.1 MB
    note.write_bytes(b"---\r\nid: FR-1\r\nstatus: planned\r\n---\r\n" + body)
    write_fields(note, {"status": "invalid", "error": "not UTF-8"}, move=False,
                 vault_root=tmp_path)
    assert note.read_bytes() == (
        b"---\r\nid: FR-1\r\nstatus: invalid\r\nerror: not UTF-8\r\n---\r\n" + body
    )


def test_tab_before_a_comment_keeps_the_comment(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\nid: 0042\nstatus: planned\t# go\n---\n")
    write_fields(note, {"status": "in-progress"}, move=False, vault_root=tmp_path)
    assert note.read_text() == "---\nid: 0042\nstatus: in-progress\t# go\n---\n"
    assert _meta(note)["id"] == "0042"


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
    assert (meta["title"], meta["status"], meta["job"]) == ("New title", "in-progress", "3")
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


def _editor_save(note: Path, text: str) -> None:
    """How editors save: a temp file renamed over the note (a new inode)."""
    tmp = note.with_name(f".{note.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, note)


def test_a_save_between_opus_read_and_swap_is_kept(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("v1 read by opus")
    _editor_save(note, "v2 saved by the user")
    # opus's compare-and-replace with the stale v1: the swap displaces v2, sees it is
    # not v1 and puts it back.
    assert replace_if_unchanged(note, b"v1 read by opus", b"opus from v1") is False
    assert note.read_text() == "v2 saved by the user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.md"]


def _stress(tmp_path: Path, saves: int) -> tuple[int, int]:
    """An editor saves the note `saves` times while opus keeps writing its keys.

    After each save, once every opus write that may have raced with it has finished,
    the save must still be in the note: no user write is lost, ever. Returns
    (saves, opus writes).
    """
    note = tmp_path / "n.md"
    note.write_text("---\nid: FR-1\ntitle: x\n---\nbody 0\n")
    stop = threading.Event()
    writes = [0]
    wrote = threading.Condition()
    failure: list[BaseException] = []

    def opus() -> None:
        job = 0
        try:
            while not stop.is_set():
                job += 1
                write_fields(note, {"job": job}, move=False, vault_root=tmp_path)
                with wrote:
                    writes[0] += 1
                    wrote.notify_all()
        except BaseException as exc:  # surfaced by the main thread
            failure.append(exc)
            stop.set()
            with wrote:
                wrote.notify_all()

    thread = threading.Thread(target=opus)
    thread.start()
    try:
        for count in range(1, saves + 1):
            text = note.read_text()
            # The user's editor: change the body, keep the frontmatter it has.
            _editor_save(note, text[: text.rindex("body")] + f"body {count}\n")
            with wrote:
                seen = writes[0]
                finished = wrote.wait_for(lambda s=seen: writes[0] >= s + 2 or stop.is_set(),
                                          timeout=30)
            assert finished, "opus stopped writing"
            assert note.read_text().endswith(f"body {count}\n"), count
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failure, failure
    assert not thread.is_alive()
    assert [p.name for p in tmp_path.iterdir()] == ["n.md"]
    return saves, writes[0]


def test_writes_race_with_a_user_saving_in_a_loop(tmp_path: Path) -> None:
    started = time.monotonic()
    saves, writes = _stress(tmp_path, 300)
    print(f"{time.monotonic() - started:.1f}s")
    print(f"{saves} user saves, {writes} opus writes, no save lost")


@pytest.mark.skipif(not os.environ.get("OPUS_STRESS"), reason="set OPUS_STRESS=1 (minutes)")
@pytest.mark.timeout(1800)
def test_ten_thousand_saves_race_with_opus_and_none_is_lost(tmp_path: Path) -> None:
    saves, writes = _stress(tmp_path, 10_000)
    print(f"{saves} user saves, {writes} opus writes, no save lost")


def test_move_into_status_folder(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    note = vault / "10_features" / "03_planned" / "FR-1.md"
    note.write_text(NOTE)
    moved = write_fields(note, {"status": "done"}, move=True, vault_root=vault)
    assert moved == vault / "10_features" / "06_done" / "FR-1.md"
    assert not note.exists()
    assert _meta(moved)["status"] == "done"
    assert write_fields(moved, {"job": 1}, move=True, vault_root=vault) == moved


def test_move_never_clobbers_nor_copies(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    done = vault / "10_features" / "06_done"
    done.mkdir()
    (done / "FR-1.md").write_text("someone else")
    note = vault / "10_features" / "03_planned" / "FR-1.md"
    note.write_text(NOTE)
    assert write_fields(note, {"status": "done"}, move=True, vault_root=vault) == note
    assert (done / "FR-1.md").read_text() == "someone else"
    assert sorted(p.name for p in done.iterdir()) == ["FR-1.md"]
    meta = _meta(note)
    assert meta["status"] == "done"
    assert "not moved to 10_features/06_done/FR-1.md" in str(meta["error"])


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
        assert _meta(note)["branch"] == str(value), value
        assert yaml.safe_load(note.read_text().split("---\n")[1]) is not None


def test_opus_keys_are_the_spec_list() -> None:
    # SPEC §1: "What opus writes back: … — nothing else."
    assert frozenset({"status", "job", "stage", "branch", "pr", "updated", "error"}) == OPUS_KEYS


def test_moves_stay_inside_the_configured_features_folder(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    note = vault / "Work" / "Requests" / "03_planned" / "FR-1.md"
    note.parent.mkdir(parents=True)
    note.write_text(NOTE)
    moved = write_fields(note, {"status": "done"}, move=True, vault_root=vault,
                         features_dir="Work/Requests")
    assert moved == vault / "Work" / "Requests" / "06_done" / "FR-1.md"
    assert not (vault / "10_features").exists()


def test_a_move_killed_between_link_and_unlink_is_finished_by_the_next_move(
    tmp_path: Path,
) -> None:
    from opus.domain import FRStatus
    from opus.vault.write import move_to_status_folder

    features = tmp_path / "10_features"
    old = features / "04_in_progress" / "FR-3.md"
    new = features / "05_review" / "FR-3.md"
    old.parent.mkdir(parents=True)
    new.parent.mkdir(parents=True)
    old.write_text("---\nid: FR-3\ntitle: t\nstatus: review\n---\n")
    os.link(old, new)  # the state a SIGKILL after os.link and before unlink leaves

    assert move_to_status_folder(old, FRStatus.REVIEW, tmp_path) == new
    assert not old.exists()
    assert new.read_text().startswith("---\nid: FR-3")
