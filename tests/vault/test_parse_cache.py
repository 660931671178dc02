"""The index's parse cache: a start from it gives what a full parse gives, whatever
happened to the notes or to the file since it was written."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus.domain import FRStatus
from opus.vault.fields import DEFAULT_ID_PATTERN
from opus.vault.index import JOB_STATUSES, VaultIndex
from opus.vault.note import OtherNote, ParsedNote, Verdict
from opus.vault.scan import note_paths, read_file
from tests.conftest import make_repo
from tests.vault.test_index import NOTE, OP, _apply, _scan, assert_agrees

RACY_S = 0.05
"""The racy margin of these tests (the daemon's is 2 s): the notes are made this much
before the first index reads them, so that it may store them."""
SWAPS = ((b"FR-1", b"FR-2"), (b"FR-3", b"FR-9"), (b"done", b"plan"), (b"body", b"BODY"),
         (b"draft", b"dra\xfft"))


def _fr(fr_id: str, status: str, extra: str = "") -> str:
    return f"---\nid: {fr_id}\ntitle: Do it\nstatus: {status}\n{extra}---\nbody\n"


BASE = {
    "06_done/FR-1.md": _fr("FR-1", "done", "job: 4\n"),
    "06_done/FR-2.md": _fr("FR-2", "done", "depends_on: [FR-1]\n"),
    "02_drafts/FR-3.md": _fr("FR-3", "draft"),
    "07_failed/FR-9.md": _fr("FR-9", "cancelled", "job: 12\n"),
    "01_ideas/idea.md": "# an idea\n",
    "meetings/monday.md": "---\ntags: [meeting]\n---\nnotes\n",
}
"""A vault's brief notes (what the cache holds), under the random edits of `OPS`."""
TEXTS = (*BASE.values(), _fr("FR-1", "failed", "job: 4\n"), _fr("FR-2", "done"),
         _fr("FR-3", "planned"), _fr("FR-4", "review", "job: 5\n"), _fr("FR-1", "seedling"),
         "---\nstatus: draft\n---\n", "no frontmatter\n")
"""What a rewrite puts in a note: each a verdict of another kind or value."""

# After the cache is written: the edits of the incremental test, and rewrites in place
# of the notes there (the same inode), whole or keeping the file's size (then only the
# mtime and ctime tell the versions apart). A note is picked by its number.
AFTER = st.lists(st.one_of(
    OP,
    st.tuples(st.just("rewrite"), st.integers(0, 99), st.one_of(st.sampled_from(TEXTS), NOTE)),
    st.tuples(st.just("same size"), st.integers(0, 99), st.sampled_from(range(len(SWAPS)))),
), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("cache") / "repo")


def _index(root: Path, repo: Path, cache: Path, *, id_pattern: str = DEFAULT_ID_PATTERN,
           racy_s: float = RACY_S) -> VaultIndex:
    index = VaultIndex(root, default_repo=repo, cache_file=cache, id_pattern=id_pattern)
    index.racy_s = racy_s
    return index


def _edit(features: Path, op: tuple[str, object, object]) -> None:
    kind, number, arg = op
    if kind not in ("rewrite", "same size"):
        _apply(features, op)
        return
    notes = sorted(note_paths(features))
    if not notes:
        return
    assert isinstance(number, int)
    path = notes[number % len(notes)]
    if kind == "rewrite":
        path.write_text(str(arg))  # in place: the inode stays
        return
    assert isinstance(arg, int)
    data = path.read_bytes()
    old, new = SWAPS[arg]
    with path.open("r+b") as out:
        out.write(data.replace(old, new) if old in data else data.replace(new, old))


def _brief_notes(root: Path) -> int:
    """How many notes the index may take from the cache: not FRs, or valid FRs neither
    planned, in progress nor marked invalid (the rest it parses at every start)."""
    return sum(_brief_verdict(read_file(path, DEFAULT_ID_PATTERN))
               for path in note_paths(root / "10_features"))


def _brief_verdict(verdict: Verdict | None) -> bool:
    if isinstance(verdict, OtherNote):
        return not verdict.why.startswith("cannot be read")
    return isinstance(verdict, ParsedNote) and verdict.fr.status not in {
        *JOB_STATUSES, FRStatus.INVALID}


def _check(index: VaultIndex, root: Path, repo: Path) -> None:
    """The index equals a fresh full parse, as `test_index` checks the incremental one."""
    full = _scan(root, repo)
    assert index.result() == full
    assert_agrees(index, full)


@settings(max_examples=50, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(OP, max_size=8), after=AFTER)
def test_a_start_from_the_cache_gives_what_a_full_parse_gives(
    repo: Path, before: list[tuple[str, object, object]], after: list[tuple[str, object, object]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vault"
        features = root / "10_features"
        features.mkdir(parents=True)
        cache = Path(tmp) / "vault-cache.json"
        for rel, text in BASE.items():
            (features / rel).parent.mkdir(parents=True, exist_ok=True)
            (features / rel).write_text(text)
        for op in before:
            _apply(features, op)
        time.sleep(RACY_S * 1.5)
        first = _index(root, repo, cache)
        first.refresh_all()
        assert (first.save_cache() or 0) == _brief_notes(root)  # None: an empty vault

        # Edited right after the cache was written, while no index runs.
        for op in after:
            _edit(features, op)
        second = _index(root, repo, cache)
        second.refresh_all()
        assert second.cached + second.misses == second.note_count
        _check(second, root, repo)

        # Once its notes are old enough, a start parses only the notes in flight.
        time.sleep(RACY_S * 1.5)
        third = _index(root, repo, cache)
        third.refresh_all()
        third.save_cache()
        fourth = _index(root, repo, cache)
        fourth.refresh_all()
        assert fourth.cached == _brief_notes(root)
        assert fourth.misses == fourth.note_count - fourth.cached
        _check(fourth, root, repo)


def _vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    done, ideas = root / "10_features" / "06_done", root / "10_features" / "01_ideas"
    done.mkdir(parents=True)
    ideas.mkdir()
    for n in range(30):
        deps = f"depends_on: [OLD-{n - 1}]\n" if n else ""
        (done / f"OLD-{n}.md").write_text(
            f"---\nid: OLD-{n}\ntitle: T\nstatus: done\njob: {n + 1}\n{deps}---\nbody\n")
        (ideas / f"idea {n}.md").write_text(f"# idea {n}\n")
    planned = root / "10_features" / "03_planned"
    planned.mkdir()
    (planned / "FR-1.md").write_text(
        "---\nid: FR-1\ntitle: T\nstatus: planned\ndepends_on: [OLD-3]\n---\nbody\n")
    time.sleep(RACY_S * 1.5)
    return root


def _rewrite_header(cache: Path, **changes: object) -> None:
    """The cache file with its header changed and a checksum that matches it."""
    head, body, _digest = cache.read_bytes().split(b"\n", 2)
    header = {**json.loads(head), **changes}
    head = json.dumps(header, separators=(",", ":")).encode()
    cache.write_bytes(head + b"\n" + body + b"\n"
                      + hashlib.sha256(head + b"\n" + body).hexdigest().encode() + b"\n")


def _rewrite_entry(cache: Path, verdict: object) -> None:
    """The cache file with its first note's verdict replaced, checksum matching."""
    head, body, _digest = cache.read_bytes().split(b"\n", 2)
    notes = json.loads(body)
    notes[0][5] = verdict
    body = json.dumps(notes).encode()
    cache.write_bytes(head + b"\n" + body + b"\n"
                      + hashlib.sha256(head + b"\n" + body).hexdigest().encode() + b"\n")


def _folder_for(cache: Path) -> None:
    cache.unlink()
    cache.mkdir()


DAMAGE: dict[str, Callable[[Path], object]] = {
    "truncated": lambda cache: cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2]),
    "one byte changed": lambda cache: cache.write_bytes(
        cache.read_bytes().replace(b'"done"', b'"dome"', 1)),
    "empty": lambda cache: cache.write_bytes(b""),
    "garbage": lambda cache: cache.write_bytes(os.urandom(5000)),
    "another format": lambda cache: _rewrite_header(cache, format=0),
    "another opus": lambda cache: _rewrite_header(cache, code="0" * 64),
    "another vault": lambda cache: _rewrite_header(
        cache, scope={"root": "/elsewhere", "features": "/elsewhere/10_features",
                      "id_pattern": r"[A-Z][A-Z0-9]*-\d+"}),
    "a header that is a list": lambda cache: cache.write_bytes(
        b"[]\n" + cache.read_bytes().split(b"\n", 1)[1]),
    "a verdict of the wrong shape": lambda cache: _rewrite_entry(cache, [1, 2]),
    "an unknown status": lambda cache: _rewrite_entry(cache, ["OLD-0", "finished", 1, [], 7]),
    "a folder in its place": _folder_for,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_foreign_cache_file_means_a_full_parse_and_no_error(
    tmp_path: Path, repo: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = _vault(tmp_path)
    cache = tmp_path / "vault-cache.json"
    first = _index(root, repo, cache)
    first.refresh_all()
    assert first.save_cache() == 60  # not the planned FR: parsed at every start
    DAMAGE[damage](cache)

    caplog.set_level(logging.INFO, logger="opus.vault.parse_cache")
    index = _index(root, repo, cache)
    index.refresh_all()
    assert index.note_count == 61
    assert index.misses == 61 - index.cached
    assert index.cached == 0  # the first entry is the bad one: every note is parsed
    _check(index, root, repo)
    assert len([r for r in caplog.records if "vault index cache" in r.getMessage()]) == 1
    # ... and the next save puts a good file in its place (a folder stays: not ours).
    index.save_cache()
    if damage != "a folder in its place":
        again = _index(root, repo, cache)
        again.refresh_all()
        assert (again.cached, again.misses) == (60, 1)


def test_the_cache_file_is_replaced_whole_and_private(tmp_path: Path, repo: Path) -> None:
    root = _vault(tmp_path)
    cache = tmp_path / "state" / "vault-cache.json"
    cache.parent.mkdir()
    index = _index(root, repo, cache)
    index.refresh_all()
    assert index.save_cache() == 60
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    inode = cache.stat().st_ino
    assert index.save_cache() is None  # nothing changed since

    note = root / "10_features" / "01_ideas" / "idea 0.md"
    note.write_text("---\nid: FR-9\ntitle: T\nstatus: draft\n---\n")
    index.refresh({note})
    time.sleep(RACY_S * 1.5)
    index.refresh({note})  # the same version: still the read that came too soon after it
    assert index.save_cache() == 59  # the note saved just before its read is left out
    assert cache.stat().st_ino != inode  # a new file renamed over the old one
    assert [p.name for p in cache.parent.iterdir()] == ["vault-cache.json"]

    other = _index(root, repo, cache, id_pattern=r"OLD-\d+")
    other.refresh_all()  # another id pattern: another verdict for FR-1, so no cache
    assert other.cached == 0


def test_a_note_changed_just_before_its_read_is_not_stored(tmp_path: Path, repo: Path) -> None:
    """A note saved within the racy margin of its read could change again without its
    stat key changing (the filesystem's timestamp granularity): it is parsed again at
    the next start, however long the daemon ran."""
    root = _vault(tmp_path)
    time.sleep(1.0)
    fresh = root / "10_features" / "06_done" / "OLD-5.md"
    fresh.write_text(fresh.read_text().replace("body", "bodY"))
    index = _index(root, repo, tmp_path / "cache.json", racy_s=1.0)
    index.refresh_all()  # every note here is more than 1 s older than its read but one
    assert index.save_cache() == 59
    fresh.write_text(fresh.read_text().replace("bodY", "BODY"))  # same size, maybe same tick
    again = _index(root, repo, tmp_path / "cache.json", racy_s=1.0)
    again.refresh_all()
    assert again.misses == 2  # that note and the planned one
    _check(again, root, repo)
