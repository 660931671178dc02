"""`opus demo` as a first-time user runs it, and `opus service install --user`."""

from __future__ import annotations

from pathlib import Path

import frontmatter

from tests.conftest import run_git
from tests.e2e_cli.helpers import clean_env, project_with_repo, run_opus


def test_demo_without_a_key_is_a_labelled_rehearsal_that_reaches_review(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    result = run_opus("demo", "--dir", str(demo), cwd=tmp_path, env=clean_env(tmp_path))
    assert result.code == 0, result.err
    assert "REHEARSAL" in result.out and "no Anthropic API call" in result.out
    assert "DEMO-1" in result.out and "awaiting_review" in result.out
    review = demo / "vault" / "10_features" / "05_review"
    note = frontmatter.load(review / "DEMO-1-rehearsal.md")
    assert (note["status"], note["stage"]) == ("review", "deliver")
    pr_notes = sorted(review.glob("PR-DEMO-1-*.md"))
    assert len(pr_notes) == 1 and note["pr"] == str(pr_notes[0])
    assert "[rehearsal]" in pr_notes[0].read_text()
    # Each note it points to says what it is: the FR, and the PR to decide on.
    assert f"the FR, now `status: review`: {review / 'DEMO-1-rehearsal.md'}" in result.out
    assert f"the pull request (review it, then set its `decision:`): {pr_notes[0]}" in result.out


def test_demo_twice_in_the_same_dir_does_not_open_a_second_pr(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = clean_env(tmp_path)
    assert run_opus("demo", "--dir", str(demo), cwd=tmp_path, env=env).code == 0
    again = run_opus("demo", "--dir", str(demo), cwd=tmp_path, env=env)
    assert again.code == 0, again.err
    features = demo / "vault" / "10_features"
    assert len(list(features.glob("05_review/PR-*.md"))) == 1
    notes = list(features.rglob("DEMO-1-*.md"))
    assert len(notes) == 1, "no twin note with the same id (which would make both invalid)"
    assert frontmatter.load(notes[0])["status"] == "review"


def test_demo_that_cannot_finish_exits_1_and_says_why(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    (demo / "demo-repo" / ".git").mkdir(parents=True)  # a repo opus cannot use
    result = run_opus("demo", "--dir", str(demo), cwd=tmp_path, env=clean_env(tmp_path))
    assert result.code == 1, result.out + result.err
    assert "the demo could not finish: DEMO-1" in result.err
    assert "Traceback" not in result.err


def test_service_install_user_writes_the_unit_and_says_how_to_enable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = tmp_path / "p"
    assert run_opus("init", str(project), cwd=tmp_path).code == 0
    result = run_opus("service", "install", "--user", cwd=project, env=clean_env(home))
    assert result.code == 0, result.err
    unit = home / ".config" / "systemd" / "user" / "opus.service"
    assert result.out.count(f"Wrote {unit}.") == 1, result.out
    assert "systemctl --user daemon-reload && systemctl --user enable --now opus" in result.out
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert f"WorkingDirectory={project}" in text
    assert f"ReadWritePaths={project / '.opus'} {project / 'vault'}" in text
    assert "WantedBy=default.target" in text


def test_service_unit_leaves_the_repo_and_its_local_push_remote_writable(
    tmp_path: Path,
) -> None:
    # The README's offline recipe: `repo` pushes to `remote.git` beside it. Under the
    # unit's ProtectSystem=strict, `git push` writes into remote.git: it must be listed.
    home = tmp_path / "home"
    project = tmp_path / "p"
    assert run_opus("init", str(project), cwd=tmp_path).code == 0
    repo = project_with_repo(project)
    elsewhere = tmp_path / "other"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(elsewhere))
    run_git(repo, "remote", "add", "mirror", f"file://{elsewhere}")
    run_git(repo, "remote", "add", "hub", "git@github.com:someone/repo.git")
    env = clean_env(home, {"OPUS_GIT__DEFAULT_REPO": "repo"})

    result = run_opus("service", "install", "--user", cwd=project, env=env)
    assert result.code == 0, result.err
    unit = (home / ".config" / "systemd" / "user" / "opus.service").read_text()
    assert sorted(_writable(unit)) == sorted(
        str(path) for path in (project / ".opus", repo, project / "remote.git", project / "vault")
    )
    assert "add any other repo an FR names" in result.out
    assert f"go in {project / 'opus.env'}, mode 600" in result.out

    for remote, listed in (("mirror", True), ("hub", False)):
        env = clean_env(home, {"OPUS_GIT__DEFAULT_REPO": "repo", "OPUS_GIT__REMOTE": remote})
        assert run_opus("service", "install", "--user", cwd=project, env=env).code == 0
        unit = (home / ".config" / "systemd" / "user" / "opus.service").read_text()
        assert (str(elsewhere) in _writable(unit)) is listed, unit


def _writable(unit: str) -> list[str]:
    line = next(line for line in unit.splitlines() if line.startswith("ReadWritePaths="))
    return line.removeprefix("ReadWritePaths=").split()
