"""A vault a person already lives in: opus touches only FR notes and says why it cannot
use the planned ones it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opus.vault.problems import read_problems, scan_problems
from opus.vault.text import split_head
from tests.conftest import make_repo
from tests.e2e_delivery.harness import Bench, make_bench
from tests.vault.corpus import GOOD, OTHERS, UNUSABLE


def write_corpus(features: Path) -> None:
    for rel, data in [*OTHERS.items(), *GOOD.items(),
                      *((rel, entry[0]) for rel, entry in UNUSABLE.items())]:
        path = features / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def check_corpus(vault: Path, state_dir: Path) -> None:
    """Every other note byte-identical and in place; every unusable one reported."""
    features = vault / "10_features"
    for rel, data in OTHERS.items():
        assert (features / rel).read_bytes() == data, rel
    problems = {p.path: p.reason for p in read_problems(state_dir)}
    expected = {f"10_features/{rel}" for rel in UNUSABLE}
    assert set(problems) == expected, sorted(set(problems) ^ expected)
    for rel, (data, words, rewritable) in UNUSABLE.items():
        assert words in problems[f"10_features/{rel}"], (rel, problems[f"10_features/{rel}"])
        after = (features / rel).read_bytes()  # never moved
        if not rewritable:
            assert after == data, rel
            continue
        head = split_head(after)
        assert head is not None and b"status: invalid" in head[0], rel
        original = split_head(data)
        assert original is not None and head[1] == original[1], f"{rel}: body changed"
    assert not list(vault.rglob("* (2).md"))
    assert not list((features / "07_failed").glob("*.md")), "an invalid note was moved"


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return make_bench(tmp_path)


def test_intake_touches_only_fr_notes(bench: Bench) -> None:
    write_corpus(bench.vault / "10_features")
    for _ in range(3):
        bench.intake.tick()
    check_corpus(bench.vault, bench.ctx.settings.state_dir)
    assert [job.fr_id for job in bench.store.jobs()] == ["FR-1"]
    assert sorted(p.path for p in scan_problems(bench.ctx.settings)) == sorted(
        f"10_features/{rel}" for rel in UNUSABLE
    )


def test_opus_scan_lists_every_note_and_writes_nothing(tmp_path: Path) -> None:
    features = tmp_path / "vault" / "10_features"
    write_corpus(features)
    make_repo(tmp_path / "repo")
    (tmp_path / "opus.toml").write_text('[vault]\npath = "vault"\n[git]\ndefault_repo = "repo"\n')
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    run = subprocess.run([sys.executable, "-m", "opus", "scan", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "opus scan wrote something"
    lines = {line["path"]: line for line in json.loads(run.stdout)}
    for rel in OTHERS:
        assert lines[f"10_features/{rel}"]["action"] == "ignore", rel
    for rel, (_data, words, rewritable) in UNUSABLE.items():
        line = lines[f"10_features/{rel}"]
        assert line["action"] == ("invalid" if rewritable else "report"), line
        assert words in line["detail"], line
    assert lines["10_features/03_planned/FR-1.md"]["action"] == "queue"
    text = subprocess.run([sys.executable, "-m", "opus", "scan"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 0 and "nothing was written" in text.stdout


def test_the_features_folder_is_configurable(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    features = tmp_path / "vault" / "Work" / "Requests"
    (features / "03_planned").mkdir(parents=True)
    (features / "03_planned" / "FR-5.md").write_bytes(GOOD["03_planned/FR-1.md"].replace(
        b"FR-1", b"FR-5"))
    (tmp_path / "vault" / "10_features").mkdir()
    (tmp_path / "vault" / "10_features" / "FR-6.md").write_text(
        "---\nid: FR-6\ntitle: elsewhere\nstatus: planned\n---\n")
    (tmp_path / "opus.toml").write_text('[vault]\npath = "vault"\nfeatures_dir = "Work/Requests"'
                                        '\n[git]\ndefault_repo = "repo"\n')
    run = subprocess.run([sys.executable, "-m", "opus", "scan", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert [(line["path"], line["action"]) for line in json.loads(run.stdout)] == [
        ("Work/Requests/03_planned/FR-5.md", "queue")]
