"""A note writer killed between making its hidden file and removing it leaves that file
among the user's notes; intake's next full walk removes it when its writer is gone, and
never a live writer's file, a note's only copy, or a file that is not opus's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opus.vault.index import VaultIndex
from opus.vault.leftovers import remove_leftovers
from tests.e2e_delivery.harness import make_bench
from tests.vault.test_interrupted_move import _half_moved

NOTE = "---\nid: FR-7\ntitle: Add greeting\nstatus: draft\nmine: kept\n---\nBody.\n"

# A real writer process that SIGKILLs itself at one audit event of a note write: the
# temp file exists then and its removal has not happened.
KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from opus.vault.write import create_note, write_fields

    what, event, note, vault = sys.argv[1:5]

    def hook(name, args):
        if name == event:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    if what == "pr":
        from opus.forges.local import LocalForge

        LocalForge(Path(vault)).open_pr(branch="opus/fr-7-x", base="main", title="FR-7: X",
                                        body="Body.")
    elif what == "edit":
        write_fields(Path(note), {"job": 3}, move=False,
                     vault_root=Path(vault))
    else:
        create_note(Path(note), "---\\nid: Q-1\\n---\\nA question.\\n")
    """
)


def _run_killed(*args: str) -> int:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, *args], env=env,
                             stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    return child.pid


def _hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()
                  if path.name.startswith(".") and path.name != ".gitkeep")


def test_an_edit_killed_before_its_exchange_leaves_a_temp_file_intake_removes(
    tmp_path: Path,
) -> None:
    bench = make_bench(tmp_path)
    note = bench.vault / "10_features" / "02_drafts" / "FR-7.md"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(NOTE, encoding="utf-8")

    pid = _run_killed("edit", "os.chmod", str(note), str(bench.vault))

    [left] = _hidden(note.parent)
    assert left.startswith(f".FR-7.md.{pid}@") and left.endswith(".opus-tmp")
    assert note.read_text(encoding="utf-8") == NOTE  # the note was never touched
    bench.intake.tick()
    assert _hidden(note.parent) == []
    assert "mine: kept" in note.read_text(encoding="utf-8")


def test_a_new_note_killed_before_its_link_leaves_a_temp_file_intake_removes(
    tmp_path: Path,
) -> None:
    bench = make_bench(tmp_path)
    folder = bench.vault / "10_features" / "03_planned"
    folder.mkdir(parents=True, exist_ok=True)

    pid = _run_killed("create", "os.link", str(folder / "Q-1.md"), str(bench.vault))

    [left] = _hidden(folder)
    assert left.startswith(f".Q-1.md.{pid}@") and not (folder / "Q-1.md").exists()
    bench.intake.tick()
    assert _hidden(folder) == []


def test_temp_files_of_live_or_foreign_writers_stay_until_abandoned(tmp_path: Path) -> None:
    folder = tmp_path / "10_features" / "03_planned"
    folder.mkdir(parents=True)
    host = socket.gethostname().replace(".", "_")[:32]
    with subprocess.Popen(["sleep", "60"]) as live:
        try:
            names = {
                "live": f".a.md.{live.pid}@{host}.abc123de.opus-tmp",
                "other host": f".b.md.{live.pid}@elsewhere.abc123de.opus-tmp",
                "untagged, new": ".c.md.abc123de.opus-tmp",
                "untagged, old": ".d.md.abc123de.opus-tmp",
                "a user's": ".e.md.swp",
            }
            for name in names.values():
                (folder / name).write_text("x")
            hours_ago = time.time() - 2 * 3600
            os.utime(folder / names["untagged, old"], (hours_ago, hours_ago))

            VaultIndex(tmp_path, default_repo=None, finish_moves=True).full()

            kept = set(_hidden(folder))
            assert kept == set(names.values()) - {names["untagged, old"]}
        finally:
            live.kill()
    live.wait(timeout=10)
    VaultIndex(tmp_path, default_repo=None, finish_moves=True).full()
    assert names["live"] not in _hidden(folder)


def test_a_dry_walk_removes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "10_features" / "03_planned"
    folder.mkdir(parents=True)
    (folder / ".a.md.abc123de.opus-tmp").write_text("x")
    hours_ago = time.time() - 2 * 3600
    os.utime(folder / ".a.md.abc123de.opus-tmp", (hours_ago, hours_ago))
    VaultIndex(tmp_path, default_repo=None).full()
    assert _hidden(folder) == [".a.md.abc123de.opus-tmp"]


# The repair of a half-done move renames the stale name aside, then unlinks it: killed
# in between, the aside name is a second name of the note kept in its status folder.
KILLED_REPAIR = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from opus.vault.index import VaultIndex

    def hook(name, args):
        if name == "os.remove" and str(args[0]).endswith(".opus-stale"):
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    VaultIndex(Path(sys.argv[1]), default_repo=None, finish_moves=True).full()
    """
)


def test_a_repair_killed_after_renaming_the_stale_name_aside_is_finished(
    tmp_path: Path,
) -> None:
    bench = make_bench(tmp_path)
    old, new = _half_moved(bench.vault)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", KILLED_REPAIR, str(bench.vault)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _hidden(old.parent) == [".FR-7.md.opus-stale"]

    bench.intake.tick()

    assert _hidden(old.parent) == [] and not old.exists()
    assert "mine: kept" in new.read_text(encoding="utf-8")


def test_an_aside_name_that_is_a_note_s_only_copy_is_put_back(tmp_path: Path) -> None:
    folder = tmp_path / "10_features" / "04_in_progress"
    folder.mkdir(parents=True)
    (folder / ".FR-8.md.opus-stale").write_text(NOTE.replace("FR-7", "FR-8"))
    (folder / ".FR-9.md.opus-stale").write_text("the user's save")
    (folder / "FR-9.md").write_text("a newer save")

    removed = remove_leftovers(sorted(folder.iterdir()))

    assert removed == [folder / ".FR-8.md.opus-stale"]
    assert (folder / "FR-8.md").read_text() == NOTE.replace("FR-7", "FR-8")
    assert (folder / ".FR-9.md.opus-stale").read_text() == "the user's save"
    assert (folder / "FR-9.md").read_text() == "a newer save"


def test_a_pr_note_killed_before_its_link_leaves_a_temp_file_intake_removes(
    tmp_path: Path,
) -> None:
    bench = make_bench(tmp_path)
    review = bench.vault / "10_features" / "05_review"

    pid = _run_killed("pr", "os.link", "-", str(bench.vault))

    [left] = _hidden(review)
    assert left.startswith(f".PR-FR-7-fr-7-x.md.{pid}@") and left.endswith(".opus-tmp")
    bench.intake.tick()
    assert _hidden(review) == []
