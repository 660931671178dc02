"""Parsing and validating single notes: a corpus of broken notes and valid edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus.domain import FeatureRequest, FRStatus, Priority
from opus.vault import InvalidNote, parse_note
from opus.vault.note import MAX_NOTE_BYTES, OtherNote, read_note
from tests.conftest import make_repo

GOOD = "---\nid: FR-1\ntitle: Do it\nstatus: planned\n{extra}---\nBody\n"

# (case name, note bytes, file name, words the error must contain)
CORPUS: list[tuple[str, bytes, str, tuple[str, ...]]] = [
    ("bad yaml", b"---\nid: FR-1\ntitle: a: b: c\n---\n", "FR-1.md", ("bad YAML", "line 3")),
    ("tab indent", b"---\nid: FR-1\n\ttitle: x\n---\n", "FR-1.md", ("bad YAML", "line 3")),
    ("list frontmatter", b"---\n- id\n- title\n---\n", "FR-1.md", ("not a mapping", "list")),
    ("scalar frontmatter", b"---\njust words\n---\n", "FR-1.md", ("not a mapping", "str")),
    ("missing id", b"---\ntitle: x\nstatus: planned\n---\n", "notes.md",
     ("missing id", "id: FR-123")),
    ("empty id", b"---\nid: ''\ntitle: x\nstatus: planned\n---\n", "n.md", ("missing id",)),
    ("id with space", b"---\nid: FR 1\ntitle: x\nstatus: planned\n---\n", "n.md",
     ("id 'FR 1'", "letters")),
    ("id is a list", b"---\nid: [1]\ntitle: x\n---\n", "FR-1.md", ("`id` must be text", "a list")),
    ("missing title", b"---\nid: FR-1\n---\n", "FR-1.md", ("missing title",)),
    ("empty title", b"---\nid: FR-1\ntitle:   \n---\n", "FR-1.md", ("missing title",)),
    ("title mapping", b"---\nid: FR-1\ntitle: {a: 1}\n---\n", "FR-1.md", ("`title`", "mapping")),
    ("unknown status", b"---\nid: FR-1\ntitle: x\nstatus: plannd\n---\n", "FR-1.md",
     ("unknown status 'plannd'", "planned", "cancelled")),
    ("unknown priority", b"---\nid: FR-1\ntitle: x\npriority: urgent\n---\n", "FR-1.md",
     ("unknown priority 'urgent'", "critical, high, medium, low")),
    ("depends_on mapping", b"---\nid: FR-1\ntitle: x\ndepends_on: {a: 1}\n---\n", "FR-1.md",
     ("depends_on must be a list", "a mapping")),
    ("depends_on nested", b"---\nid: FR-1\ntitle: x\ndepends_on: [[a, b]]\n---\n", "FR-1.md",
     ("depends_on must be a list", "a list")),
    ("depends_on empty link", b'---\nid: FR-1\ntitle: x\ndepends_on: ["[[]]"]\n---\n', "FR-1.md",
     ("depends_on", "[[]]")),
    ("budget not mapping", b"---\nid: FR-1\ntitle: x\nbudget: 5\n---\n", "FR-1.md",
     ("budget must be a mapping",)),
    ("budget text", b"---\nid: FR-1\ntitle: x\nbudget: {usd: lots}\n---\n", "FR-1.md",
     ("budget.usd must be a number", "'lots'")),
    ("budget negative", b"---\nid: FR-1\ntitle: x\nbudget: {minutes: -1}\n---\n", "FR-1.md",
     ("budget.minutes must be a number >= 0",)),
    ("budget unknown key", b"---\nid: FR-1\ntitle: x\nbudget: {eur: 1}\n---\n", "FR-1.md",
     ("unknown budget key", "eur")),
    ("allowed_paths numbers", b"---\nid: FR-1\ntitle: x\nallowed_paths: [1, 2]\n---\n",
     "FR-1.md", ("allowed_paths must be a list of glob strings",)),
    ("non utf-8", b"---\nid: FR-1\ntitle: caf\xe9\n---\n", "FR-1.md",
     ("not valid UTF-8", "line 3", "re-save")),
    ("binary", b"---\nid: FR-1\n---\n\x00\x01\x02", "FR-1.md", ("binary", "NUL")),
    ("unclosed", b"---\nid: FR-1\ntitle: x\n", "FR-1.md", ("never closed", "---")),
    ("python tag", b"---\nid: !!python/object:os.system x\nstatus: planned\n---\n", "n.md",
     ("bad YAML",)),
    ("alias bomb", b"---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
     b"b: &b [*a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c]\n"
     b"e: [*d, *d, *d, *d, *d, *d, *d]\nid: FR-1\ntitle: x\n---\n", "FR-1.md", ("too large",)),
    ("repo empty", b"---\nid: FR-1\ntitle: x\nrepo: ''\n---\n", "FR-1.md", ("`repo` is empty",)),
]


@pytest.mark.parametrize(("data", "name", "words"), [c[1:] for c in CORPUS],
                         ids=[c[0] for c in CORPUS])
def test_malformed_note_is_invalid_with_a_precise_error(
    tmp_path: Path, data: bytes, name: str, words: tuple[str, ...]
) -> None:
    result = parse_note(tmp_path / name, data, vault_root=tmp_path, default_repo=None)
    assert isinstance(result, InvalidNote)
    for word in words:
        assert word in result.error
    assert "\n" not in result.error


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 15


def test_oversized_note(tmp_path: Path) -> None:
    data = GOOD.format(extra="").encode() + b"x" * MAX_NOTE_BYTES
    result = read_note(tmp_path / "n.md", data)
    assert isinstance(result, InvalidNote)
    assert "over the 1 MiB limit" in result.error


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    result = read_note(tmp_path / "n.md", b"---\ntitle: ''\npriority: soon\nstatus: PLANNED\n---\n")
    assert isinstance(result, InvalidNote)
    assert "missing id" in result.error
    assert "missing title" in result.error
    assert "unknown priority 'soon'" in result.error


def _valid(path: Path, data: bytes, **kw: object) -> FeatureRequest:
    result = read_note(path, data)
    assert not isinstance(result, InvalidNote), result.error
    return result.fr


def test_crlf_and_bom_note(tmp_path: Path) -> None:
    data = "\ufeff---\r\nid: FR-7\r\ntitle: Windows\r\n---\r\n# Body\r\nline\r\n".encode()
    fr = _valid(tmp_path / "n.md", data)
    assert (fr.id, fr.title) == ("FR-7", "Windows")
    assert fr.body == "# Body\nline"


def test_wiki_links_with_alias_heading_and_folder(tmp_path: Path) -> None:
    data = (
        b'---\nid: FR-1\ntitle: x\ndepends_on: ["[[FR-045|the limiter]]", [[FR-046]],'
        b' "[[10_features/06_done/FR-047.md#Summary]]", FR-048, [FR-049|alias]]\n---\n'
    )
    fr = _valid(tmp_path / "n.md", data)
    assert fr.depends_on == ("FR-045", "FR-046", "FR-047", "FR-048", "FR-049")


def test_single_string_dependency(tmp_path: Path) -> None:
    fr = _valid(tmp_path / "n.md", b"---\nid: FR-1\ntitle: x\ndepends_on: '[[FR-2]]'\n---\n")
    assert fr.depends_on == ("FR-2",)


@pytest.mark.parametrize(("name", "expected"), [("FR-123.md", "FR-123"),
                                                ("BUG-7 Crash on start.md", "BUG-7")])
def test_file_stem_is_the_id_when_it_looks_like_one(
    tmp_path: Path, name: str, expected: str
) -> None:
    assert _valid(tmp_path / name, b"---\ntitle: x\n---\n").id == expected


def test_defaults_and_all_keys(tmp_path: Path) -> None:
    fr = _valid(tmp_path / "n.md", b"---\nid: FR-1\ntitle: x\n---\n")
    assert (fr.status, fr.priority, fr.depends_on, fr.budget_usd) == (
        FRStatus.DRAFT, Priority.MEDIUM, (), None)
    full = GOOD.format(extra=(
        "priority: HIGH\nbase: dev\ntest_command: pytest -q\nallowed_paths: [src/**]\n"
        "budget: {usd: 2.5, minutes: 30}\njob: 4\n"
    ))
    fr = _valid(tmp_path / "n.md", full.encode())
    assert fr.priority is Priority.HIGH
    assert (fr.base, fr.test_command, fr.allowed_paths) == ("dev", "pytest -q", ("src/**",))
    assert (fr.budget_usd, fr.budget_minutes, fr.job) == (2.5, 30.0, 4)


def test_content_hash_ignores_opus_keys_but_not_user_content(tmp_path: Path) -> None:
    base = _valid(tmp_path / "n.md", GOOD.format(extra="").encode()).content_hash
    opus = GOOD.format(extra="job: 3\nstage: code\nbranch: b\npr: u\nupdated: 2025-01-01\n"
                       "error: e\n").replace("planned", "in-progress")
    assert _valid(tmp_path / "n.md", opus.encode()).content_hash == base
    assert _valid(tmp_path / "n.md", GOOD.format(extra="tags: [a]\n").encode()).content_hash != base
    edited = GOOD.format(extra="").replace("Body", "Body!")
    assert _valid(tmp_path / "n.md", edited.encode()).content_hash != base


def test_repo_resolves_against_the_vault_parent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    vault = tmp_path / "vault"
    data = GOOD.format(extra="repo: api\n").encode()
    fr = parse_note(vault / "n.md", data, vault_root=vault, default_repo=None)
    assert isinstance(fr, FeatureRequest)
    assert fr.repo == repo.resolve()


def test_default_repo_is_used_when_repo_is_omitted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    data = GOOD.format(extra="").encode()
    fr = parse_note(tmp_path / "n.md", data, vault_root=tmp_path / "vault", default_repo=repo)
    assert isinstance(fr, FeatureRequest)
    assert fr.repo == repo


@pytest.mark.parametrize(("extra", "words"), [
    ("", ("no repo: add `repo:` or set git.default_repo",)),
    ("repo: nowhere\n", ("does not exist", "nowhere")),
    ("repo: plain\n", ("not a git repository", "git init")),
])
def test_planned_note_needs_a_real_repo(tmp_path: Path, extra: str, words: tuple[str, ...]) -> None:
    (tmp_path / "plain").mkdir()
    data = GOOD.format(extra=extra).encode()
    result = parse_note(tmp_path / "v" / "n.md", data, vault_root=tmp_path / "v",
                        default_repo=None)
    assert isinstance(result, InvalidNote)
    assert result.should_flag
    for word in words:
        assert word in result.error


def test_draft_without_repo_is_valid(tmp_path: Path) -> None:
    data = GOOD.format(extra="").replace("planned", "draft").encode()
    assert isinstance(parse_note(tmp_path / "n.md", data, vault_root=tmp_path,
                                 default_repo=None), FeatureRequest)


@pytest.mark.parametrize(("data", "flag"), [
    (b"---\nstatus: planned\n---\n", True),
    (b"---\nstatus: Plannd\ntitle: x\nid: FR-1\n---\n", True),
    (b"---\nstatus: planned\ntitle: [\n---\n", True),
    (b"---\nstatus: draft\nid: FR-1\n---\n", False),
    (b"---\nstatus: invalid\nid: FR-1\n---\n", False),
    (b"---\nstatus: planned\nid: FR-1\n", False),  # unclosed: reported, never rewritten
])
def test_which_invalid_notes_should_be_flagged(tmp_path: Path, data: bytes, flag: bool) -> None:
    result = read_note(tmp_path / "idea.md", data)
    assert isinstance(result, InvalidNote)
    assert result.should_flag is flag


@pytest.mark.parametrize("data", [
    b"just an idea, no frontmatter\n",
    b"---\nstatus: draft\n---\n",
    b"---\nstatus: active\ntitle: Garden\n---\n",
    b'---\nstatus: ["[[Active]]"]\n---\n',
    b"---\nid: fr-1\nstatus: seedling\n---\n",
    b"---\n\nA horizontal rule opens this note.\n",
    b"---\n- a\n- b\n---\nlist frontmatter\n",
])
def test_notes_that_are_not_frs_are_left_alone(tmp_path: Path, data: bytes) -> None:
    assert isinstance(read_note(tmp_path / "idea.md", data), OtherNote)


NULL_WORDS = {"null", "Null", "NULL"}  # YAML's null: an empty id, reported as missing


@settings(max_examples=300, derandomize=True, deadline=None)
@given(fr_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda text: text not in NULL_WORDS))
def test_ids_keep_their_text(fr_id: str) -> None:
    """`0042`, `1e5`, `1.50`, `on`, `2024-01-02`: an id is the text written."""
    data = f"---\nid: {fr_id}\ntitle: x\nstatus: planned\n---\n".encode()
    result = read_note(Path("/v/n.md"), data)
    assert not isinstance(result, (InvalidNote, OtherNote)), result
    assert result.fr.id == fr_id


@pytest.mark.parametrize("word", ["0042", "on", "yes", "2024-01-02", "1.50", "1e5", "0x1F"])
def test_yaml_11_words_stay_text(word: str) -> None:
    data = f"---\nid: FR-1\ntitle: {word}\nstatus: planned\nrepo: {word}\n---\n".encode()
    result = read_note(Path("/v/FR-1.md"), data)
    assert not isinstance(result, (InvalidNote, OtherNote)), result
    assert (result.fr.title, result.repo_text) == (word, word)
