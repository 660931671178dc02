"""Issue 2's promise: a new user can `opus init`, drop FRs in, and `opus run --once` /
`opus status` show each one completed or invalid with a reason that says how to fix it.
"""

from __future__ import annotations

import json
from pathlib import Path

import frontmatter

from tests.e2e_cli.helpers import (
    FAST_POLL,
    any_fr_responder,
    api_env,
    clean_env,
    fr_note,
    project_with_repo,
    run_opus,
)
from tests.standins.messages_api import MessagesAPI

BROKEN = {
    "bad-yaml.md": "---\nid: FR-900\ntitle: [unclosed\nstatus: planned\n---\nbody\n",
    "no-title.md": "---\nid: FR-901\nstatus: planned\nrepo: repo\n---\nbody\n",
    "bad-priority.md": "---\nid: FR-902\ntitle: Odd priority\nstatus: planned\n"
                       "priority: urgent\nrepo: repo\n---\nbody\n",
    "dup-a.md": fr_note("FR-903", "First twin", repo="repo"),
    "dup-b.md": fr_note("FR-903", "Second twin", repo="repo"),
    "no-repo.md": fr_note("FR-904", "Nowhere to go"),
    "cycle-a.md": fr_note("FR-905", "Chicken", repo="repo", depends_on="[FR-906]"),
    "cycle-b.md": fr_note("FR-906", "Egg", repo="repo", depends_on="[[FR-905]]"),
}
# What each error must name (the problem) and suggest (the fix), lower-cased.
EXPECTED = {
    "bad-yaml.md": ("bad yaml", "fix the syntax"),
    "no-title.md": ("missing title", "add `title:"),
    "bad-priority.md": ("unknown priority 'urgent'", "use one of critical"),
    "dup-a.md": ("duplicate id fr-903", "its own id"),
    "dup-b.md": ("duplicate id fr-903", "its own id"),
    "no-repo.md": ("no repo", "git.default_repo"),
    "cycle-a.md": ("dependency cycle", "remove one of these depends_on"),
    "cycle-b.md": ("dependency cycle", "remove one of these depends_on"),
}


def _meta(vault: Path) -> dict[str, dict[str, object]]:
    """Each note's frontmatter by file name, wherever opus moved it."""
    found: dict[str, dict[str, object]] = {}
    for path in (vault / "10_features").rglob("*.md"):
        try:
            found[path.name] = dict(frontmatter.load(path).metadata)
        except Exception:  # the bad-YAML note stays unparseable: read opus's lines directly
            found[path.name] = _loose(path)
    return found


def _loose(path: Path) -> dict[str, object]:
    head = path.read_text().split("---")[1]
    pairs = (line.partition(":") for line in head.splitlines())
    return {k.strip(): v.strip().strip('"') for k, _, v in pairs if k in ("status", "error")}


def test_init_creates_the_skeleton_and_is_idempotent(tmp_path: Path) -> None:
    project = tmp_path / "backlog"
    first = run_opus("init", str(project), cwd=tmp_path)
    assert first.code == 0, first.err
    assert (project / "opus.toml").is_file()
    assert (project / "vault" / "10_features" / "02_drafts" / "FR-001.md").is_file()
    assert (project / "vault" / "00_system" / "prompts").is_dir()
    for folder in ("01_ideas", "03_planned", "04_in_progress", "05_review", "06_done",
                   "07_failed"):
        assert (project / "vault" / "10_features" / folder).is_dir(), folder
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    again = run_opus("init", str(project), cwd=tmp_path)
    assert again.code == 0, again.err
    assert "nothing changed" in again.out
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
    # The example FR is a draft: a run picks nothing up, and says there are no jobs.
    status = run_opus("status", cwd=project)
    assert status.code == 0, status.err
    assert "no jobs yet" in status.out


def test_run_once_completes_valid_frs_and_flags_broken_ones(tmp_path: Path) -> None:
    project = tmp_path / "backlog"
    assert run_opus("init", str(project), cwd=tmp_path).code == 0
    project_with_repo(project)
    planned = project / "vault" / "10_features" / "03_planned"
    planned.joinpath("FR-100.md").write_text(
        fr_note("FR-100", "Add a marker", repo="repo", test_command="\"true\"")
    )
    planned.joinpath("FR-101.md").write_text(
        fr_note("FR-101", "Add another marker", repo="repo", test_command="\"true\"",
                priority="low")
    )
    for name, text in BROKEN.items():
        planned.joinpath(name).write_text(text)

    with MessagesAPI([any_fr_responder] * 40) as api:
        env = clean_env(tmp_path, {**FAST_POLL, **api_env(api.base_url),
                                   "OPUS_SANDBOX__KIND": "none"})
        run = run_opus("run", "--once", cwd=project, env=env)
    assert run.code == 0, run.err

    status = run_opus("status", "--json", cwd=project, env=clean_env(tmp_path))
    assert status.code == 0, status.err
    jobs = {job["fr"]: job for job in json.loads(status.out)["jobs"]}
    assert set(jobs) == {"FR-100", "FR-101"}, "only the valid FRs become jobs"
    for job in jobs.values():
        assert job["state"] == "awaiting_review", job
        assert job["pr"] and Path(job["pr"]).is_file()

    notes = _meta(project / "vault")
    for name, (problem, fix) in EXPECTED.items():
        meta = notes[name]
        assert meta.get("status") == "invalid", (name, meta)
        error = str(meta.get("error", "")).lower()
        assert problem in error and fix in error, (name, error)
    assert notes["FR-100.md"]["status"] == "review"
    delivered = project / "vault" / "10_features" / "05_review" / "FR-100.md"
    assert delivered.read_text().endswith("---\n# Summary\n\nDo add a marker.\n")
    # An invalid note is never moved: it stays where the user is editing it.
    assert planned.joinpath("bad-yaml.md").read_text().endswith("---\nbody\n"), "body kept"
    assert not (project / "vault" / "10_features" / "07_failed" / "bad-yaml.md").exists()


def test_paused_run_once_claims_nothing_and_exits(tmp_path: Path) -> None:
    project = tmp_path / "backlog"
    assert run_opus("init", str(project), cwd=tmp_path).code == 0
    project_with_repo(project)
    note = project / "vault" / "10_features" / "03_planned" / "FR-200.md"
    note.write_text(fr_note("FR-200", "Wait for me", repo="repo", test_command="\"true\""))
    env = clean_env(tmp_path, {**FAST_POLL, "OPUS_SANDBOX__KIND": "none"})

    paused = run_opus("pause", cwd=project, env=env)
    assert paused.code == 0 and "paused" in paused.out
    run = run_opus("run", "--once", cwd=project, env=env, timeout_s=30)
    assert run.code == 1, run.err  # a job left blocked (SPEC §3)
    assert "paused" in run.err.lower()
    status = json.loads(run_opus("status", "--json", cwd=project, env=env).out)
    assert status["paused"] is True
    assert [(j["fr"], j["state"], j["stage"]) for j in status["jobs"]] == [
        ("FR-200", "queued", None)
    ]

    resumed = run_opus("resume", cwd=project, env=env)
    assert resumed.code == 0 and "resumed" in resumed.out
    assert json.loads(run_opus("status", "--json", cwd=project, env=env).out)["paused"] is False
