"""Incremental intake: re-reading only the changed paths gives what a full scan gives."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus.domain import FeatureRequest, FRStatus
from opus.vault.checks import Note, ScanResult
from opus.vault.index import JOB_STATUSES, FRState, VaultIndex
from opus.vault.scan import NoteCache, scan_vault
from tests.conftest import make_repo

FOLDERS = ("01_ideas", "03_planned", "03_planned/team", "06_done")
NAMES = ("FR-1.md", "FR-2.md", "FR-3 notes.md", "idea.md", ".hidden.md", "x.txt")
IDS = (None, "FR-1", "FR-2", "FR-3", "FR-9")
STATUSES = (None, "planned", "draft", "done", "seedling", "plannned")
OUTSIDE = "../outside"

NOTE = st.builds(
    lambda fr_id, title, status, deps, body: (
        "---\n" + (f"id: {fr_id}\n" if fr_id else "") + (f"title: {title}\n" if title else "")
        + (f"status: {status}\n" if status else "") + (f"depends_on: [{deps}]\n" if deps else "")
        + f"---\n{body}\n"
    ),
    st.sampled_from(IDS), st.sampled_from(("", "Do it")), st.sampled_from(STATUSES),
    st.sampled_from(("", "FR-1", "FR-2", "FR-3", "FR-1, FR-2")),
    st.sampled_from(("body", "another body")),
)
PATHS = st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES))
OP = st.one_of(
    st.tuples(st.just("write"), PATHS, NOTE),
    st.tuples(st.just("delete"), PATHS, st.just("")),
    st.tuples(st.just("move"), PATHS, st.tuples(st.sampled_from(FOLDERS),
                                                st.sampled_from(NAMES))),
    st.tuples(st.just("garbage"), PATHS, st.just("")),
    # A folder renamed or moved (in the vault, or out of its features folder): the
    # watcher reports the folder's old and new path, not its notes.
    st.tuples(st.just("move folder"), st.sampled_from(("01_ideas", "03_planned",
                                                        "03_planned/team", "archive")),
              st.sampled_from(("archive", "06_done/team", "01_ideas/old", OUTSIDE))),
)
OPS = st.lists(OP, min_size=1, max_size=25)


def _apply(features: Path, op: tuple[str, object, object]) -> set[Path]:
    if op[0] == "move folder":
        return _move_folder(features, str(op[1]), str(op[2]))
    kind, (folder, name), arg = op  # type: ignore[misc]
    path = features / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "write":
        path.write_text(str(arg))
        return {path}
    if kind == "garbage":
        path.write_bytes(b"---\nid: FR-2\nstatus: planned\ntitle: caf\xe9\n---\n")
        return {path}
    if kind == "delete":
        path.unlink(missing_ok=True)
        return {path}
    assert isinstance(arg, tuple)
    target = features / arg[0] / arg[1]
    if path.exists() and path != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    return {path, target}


def _move_folder(features: Path, folder: str, to: str) -> set[Path]:
    source = features / folder
    target = features.parent / "outside" if to == OUTSIDE else features / to
    if not source.is_dir() or target.exists() or target.is_relative_to(source):
        return set()
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    return {source, target}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notes' default repo: only checked to be a repo, so one serves every example."""
    return make_repo(tmp_path_factory.mktemp("index") / "repo")


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_any_sequence_of_edits_gives_what_a_full_scan_gives(
    repo: Path, ops: list[tuple[str, object, object]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vault"
        features = root / "10_features"
        features.mkdir(parents=True)
        index = VaultIndex(root, default_repo=repo)
        before = _verdicts(index.full())
        for op in ops:
            changed = _apply(features, op)
            reported = index.refresh(changed)
            incremental = index.result()
            full = _scan(root, repo)
            assert incremental == full, op
            after = _verdicts(full)
            # What `refresh` says changed is exactly what did: intake acts on that alone.
            assert reported == {p for p in before.keys() | after.keys()
                                if before.get(p) != after.get(p)}, op
            assert_agrees(index, full)
            before = after


def assert_agrees(index: VaultIndex, full: ScanResult) -> None:
    """The index answers what intake asks of it as the full scan `full` does."""
    after = _verdicts(full)
    assert {p: index.note(p) for p in after} == after
    assert {p: _brief(index.entry(p)) for p in after} == {
        p: _brief(note) for p, note in after.items()}
    assert len(index) == len(after) and all(index.is_fr(p) for p in after)
    assert sorted(fr.id for fr in index.planned()) == sorted(fr.id for fr in full.planned)
    assert dict(index.statuses) == full.statuses


def _scan(root: Path, repo: Path) -> ScanResult:
    """A fresh batch scan, keeping the bodies the index keeps (of notes that make jobs)."""
    return scan_vault(root, default_repo=repo, cache=NoteCache(bodies=JOB_STATUSES))


def _brief(note: Note | FRState | None) -> object:
    """What intake's mirror reads of an FR note (an invalid note: all of it)."""
    if isinstance(note, FeatureRequest | FRState):
        return (note.id, note.status, note.job, note.path)
    return note


def _verdicts(scan: ScanResult) -> dict[Path, Note]:
    return {note.path: note for note in (*scan.valid, *scan.invalid)}


def _note(fr_id: str, *, status: str = "done", deps: str = "") -> str:
    depends = f"depends_on: [{deps}]\n" if deps else ""
    return f"---\nid: {fr_id}\ntitle: T\nstatus: {status}\n{depends}---\nbody\n"


def test_a_change_rechecks_the_notes_it_can_affect_not_the_vault(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    done = root / "10_features" / "06_done"
    done.mkdir(parents=True)
    repo = make_repo(tmp_path / "repo")
    for n in range(300):
        (done / f"OLD-{n}.md").write_text(_note(f"OLD-{n}", deps=f"OLD-{n - 1}" if n else ""))
    index = VaultIndex(root, default_repo=repo)
    index.full()
    misses, checked = index.misses, index.checked

    planned = root / "10_features" / "03_planned"
    planned.mkdir()
    new = planned / "FR-1.md"
    new.write_text(_note("FR-1", status="planned", deps="OLD-7"))
    assert index.refresh({new}) == {new}
    assert (index.misses - misses, index.checked - checked) == (1, 1)

    # A duplicate id re-checks the two holders; the notes that depend on it come along.
    dup = planned / "OLD-7 copy.md"
    dup.write_text(_note("OLD-7"))
    checked = index.checked
    changed = index.refresh({dup})
    assert changed == {dup, done / "OLD-7.md"}
    assert index.checked - checked == 4  # the two holders, OLD-8 and FR-1 (they name OLD-7)
    dup.unlink()
    assert index.refresh({dup}) == {dup, done / "OLD-7.md"}
    assert index.result() == _scan(root, repo)


def test_a_settled_fr_kept_in_brief_still_tells_its_versions_apart(tmp_path: Path) -> None:
    """A done FR is kept without its parsed record: an edit of its content is still a
    changed verdict, a write of opus's keys alone is not, and the full record is read."""
    root = tmp_path / "vault"
    done = root / "10_features" / "06_done"
    done.mkdir(parents=True)
    repo = make_repo(tmp_path / "repo")
    note = done / "FR-1.md"
    note.write_text(_note("FR-1"))
    index = VaultIndex(root, default_repo=repo)
    index.full()

    note.write_text(_note("FR-1").replace("body", "a longer body"))
    assert index.refresh({note}) == {note}
    assert index.result() == _scan(root, repo)
    assert index.note(note) == _scan(root, repo).valid[0]

    note.write_text(_note("FR-1").replace("body", "a longer body")
                    .replace("status: done", "status: done\nupdated: 2026-01-01"))
    assert index.refresh({note}) == set()
    note.write_text(_note("FR-1").replace("body", "a longer body").replace("done", "failed"))
    assert index.refresh({note}) == {note}
    assert index.entry(note) == FRState("FR-1", FRStatus.FAILED, None, note)
    assert index.result() == _scan(root, repo)
