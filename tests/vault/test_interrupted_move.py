"""A note move SIGKILLed between its hard link and its unlink is finished at intake's next
full scan: the stale name goes, the content stays, other notes are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from opus.vault.index import VaultIndex
from opus.vault.scan import scan_vault
from tests.e2e_delivery.harness import make_bench

NOTE = "---\nid: FR-7\ntitle: Add greeting\nstatus: in-progress\nmine: kept\n---\nBody.\n"

# A real writer process that SIGKILLs itself at the exact instant between the move's
# link and unlink: an audit hook fires on the unlink of the note's old name.
KILLED_MOVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from opus.vault import write_fields

    note, vault = Path(sys.argv[1]), Path(sys.argv[2])

    def hook(event, args):
        if event == "os.remove" and Path(args[0]) == note:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    write_fields(note, {"status": "review", "job": 3}, move=True, vault_root=vault)
    """
)


def _half_moved(vault: Path) -> tuple[Path, Path]:
    """Run a real move of an in-progress note to review and kill it half-way."""
    old = vault / "10_features" / "04_in_progress" / "FR-7.md"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text(NOTE, encoding="utf-8")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MOVER, str(old), str(vault)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    new = vault / "10_features" / "05_review" / "FR-7.md"
    assert old.exists() and new.exists() and os.path.samefile(old, new)
    return old, new


def test_intake_finishes_a_move_killed_between_link_and_unlink(tmp_path: Path) -> None:
    bench = make_bench(tmp_path)
    old, new = _half_moved(bench.vault)
    before = scan_vault(bench.vault, default_repo=bench.repo)
    assert any("FR-7" in str(note.error) for note in before.invalid)  # two notes, one id

    bench.intake.tick()

    assert not old.exists() and not list(old.parent.glob("*.opus-stale"))
    text = new.read_text(encoding="utf-8")
    assert "status: review" in text and "job: 3" in text and "mine: kept" in text
    after = scan_vault(bench.vault, default_repo=bench.repo)
    assert [fr.path for fr in after.valid if fr.id == "FR-7"] == [new] and not after.invalid


def test_only_the_name_in_the_status_folder_is_kept(tmp_path: Path) -> None:
    features = tmp_path / "10_features"
    old = features / "05_review" / "FR-7.md"
    new = features / "04_in_progress" / "FR-7.md"
    for folder in (old.parent, new.parent):
        folder.mkdir(parents=True)
    old.write_text(NOTE, encoding="utf-8")  # its status says in-progress
    os.link(old, new)

    result = VaultIndex(tmp_path, default_repo=None, finish_moves=True).full()

    assert not old.exists() and new.read_text(encoding="utf-8") == NOTE
    assert [fr.path for fr in result.valid] == [new]


def test_notes_that_are_not_fully_opus_s_to_repair_are_left_alone(tmp_path: Path) -> None:
    features = tmp_path / "10_features"
    pairs = {
        # not an FR: a person's note hard-linked into two folders on purpose
        "other.md": "---\ntitle: Reading list\nstatus: active\n---\n",
        # an FR whose status folder holds neither name: which one is stale is unclear
        "FR-8.md": "---\nid: FR-8\ntitle: t\nstatus: done\n---\n",
    }
    names: list[Path] = []
    for name, text in pairs.items():
        first = features / "01_ideas" / name
        second = features / "02_drafts" / name
        for folder in (first.parent, second.parent):
            folder.mkdir(parents=True, exist_ok=True)
        first.write_text(text, encoding="utf-8")
        os.link(first, second)
        names += [first, second]

    VaultIndex(tmp_path, default_repo=None, finish_moves=True).full()

    assert all(path.exists() for path in names)


def test_a_dry_scan_repairs_nothing(tmp_path: Path) -> None:
    old, new = _half_moved(tmp_path / "vault")
    scan_vault(tmp_path / "vault", default_repo=None)
    VaultIndex(tmp_path / "vault", default_repo=None).full()
    assert old.exists() and new.exists()
