"""Issue 9 end to end on real projects: the tests see the worktree (setup, proof), the
baseline runs before any token, generated files and node_modules come from setup and
are never committed. The real `anthropic` SDK talks to the stand-in, which counts
requests; git, bwrap, python venvs and npm are real."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opus.config import PipelineConfig, Settings
from opus.domain import JobState, Stage
from tests.conftest import run_git
from tests.e2e_pipeline import conversations as talk
from tests.e2e_pipeline import real_repos as rr
from tests.e2e_pipeline.harness import Project, Run, run_fr
from tests.standins.messages_api import MessagesAPI


def _settings(project: Project, **pipeline: Any) -> Settings:
    settings = project.settings()
    fields = {**settings.pipeline.model_dump(), **pipeline}
    return settings.model_copy(update={"pipeline": PipelineConfig(**fields)})


def _events(run: Run, kind: str) -> list[str]:
    return [e.message for e in run.ctx.store.events(run.job.id) if e.kind == kind]


def _pr_body(project: Project) -> str:
    (note,) = list((project.vault / "10_features" / "05_review").glob("PR-*.md"))
    return note.read_text()


@pytest.fixture
def python_project(monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The src-layout package, installed editable from the main checkout into the
    developer's venv, which is first on PATH (as it is in the developer's shell).

    Not under /tmp: the sandbox mounts an empty /tmp, and a developer's checkout and
    venv live where the sandbox sees them (read-only), e.g. under $HOME.
    """
    root = Path(tempfile.mkdtemp(prefix="opus-real-repo-", dir="/var/tmp"))
    try:
        project = rr.make_project_with(root, rr.PYTHON_FILES)
        dev_bin = rr.developer_install(project.repo, root / "devenv")
        monkeypatch.setenv("PATH", f"{dev_bin}{os.pathsep}{os.environ['PATH']}")
        yield project
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_breaking_change_fails_in_the_worktree_though_the_main_checkout_passes(
    api: MessagesAPI, python_project: Project
) -> None:
    project = python_project
    api.add(
        *talk.planner(),
        *talk.coder({"src/greeting_kit/__init__.py": rr.GREET_BROKEN}, "Reworded greet."),
        *talk.coder(
            {"src/greeting_kit/__init__.py": rr.GREET_WITH_FAREWELL,
             "tests/test_farewell.py": rr.TEST_FAREWELL},
            "Kept greet, added farewell with a test.",
        ),
        *talk.approve(),
    )  # fmt: skip
    rr.write_note(project, "FR-31", "Add farewell", "Add `farewell(name)`.")

    run = run_fr(project, _settings(project, max_iterations=2))

    assert run.outcome.kind == "awaiting_review", run.job.error
    tests = [r for r in run.ctx.store.stage_runs(run.job.id) if r.stage is Stage.TEST]
    # Round 1 broke greet: the worktree's own code was under test, so it failed...
    assert tests[0].output["passed"] is False
    assert "Hello, Ada!" in tests[0].output["output_tail"]
    # ... while the main checkout's (installed for the developer) would have passed.
    assert tests[1].output["passed"] is True
    assert "3 passed" in tests[1].output["output_tail"]
    # The baseline ran before planning, with the generated _version.py from setup.
    baseline = run.job.spec["baseline"]
    assert baseline["passed"] is True
    assert baseline["summary"].startswith("baseline: 2 passed in ")
    assert _events(run, "setup") and _events(run, "baseline")
    assert baseline["summary"] in _pr_body(project)
    # Nothing setup made was committed.
    files = rr.tree_of(project.remote, run.job.branch or "")
    assert "tests/test_farewell.py" in files
    assert not [f for f in files if f.startswith(".opus-venv") or f.endswith("_version.py")]


def test_tests_that_would_import_the_main_checkout_stop_before_any_token(
    api: MessagesAPI, python_project: Project
) -> None:
    project = python_project
    # A setup that only generates the version file: the package still comes from the
    # developer's editable install of the main checkout.
    toml = 'setup = "python3 -c \\"import runpy; runpy.run_path(\'tools/gen.py\')\\""\n'
    (project.repo / ".opus.toml").write_text(toml + f'test_command = "{rr.PY_TEST_COMMAND}"\n')
    (project.repo / "tools" / "gen.py").write_text(
        "open('src/greeting_kit/_version.py', 'w').write('VERSION = \"1.4.2\"\\n')\n"
    )
    run_git(project.repo, "add", "-A")
    run_git(project.repo, "commit", "-qm", "setup generates only")
    api.add(*talk.planner())
    rr.write_note(project, "FR-32", "Add farewell", "Add `farewell(name)`.")

    run = run_fr(project, project.settings())

    assert run.job.state is JobState.FAILED
    error = run.job.error or ""
    assert "would import `greeting_kit` from" in error
    assert str(project.repo / "src" / "greeting_kit") in error
    assert "setup" in error and ".opus-venv" in error
    assert api.requests == []


def test_an_npm_package_gets_node_modules_from_setup(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, rr.NPM_FILES)
    api.add(
        *talk.planner(),
        *talk.coder({"index.js": rr.NPM_INDEX_WITH_RANGE, "test.js": rr.NPM_TEST_WITH_RANGE},
                    "Added tickets(a, b)."),
        *talk.approve(),
    )  # fmt: skip
    rr.write_note(project, "FR-33", "Ticket ranges", "Add `tickets(a, b)`.")

    run = run_fr(project, project.settings())

    assert run.outcome.kind == "awaiting_review", run.job.error
    test = [r for r in run.ctx.store.stage_runs(run.job.id) if r.stage is Stage.TEST][-1]
    assert test.output["command"] == "npm test" and test.output["passed"] is True
    assert run.job.spec["baseline"]["summary"].startswith("baseline: 1 passed, 0 failed in ")
    assert any("npm ci" in detail for detail in _events(run, "setup"))
    files = rr.tree_of(project.remote, run.job.branch or "")
    assert "index.js" in files and not [f for f in files if f.startswith("node_modules")]


FAILING_BASE = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "conftest.py": "",
    ".opus.toml": 'test_command = "python3 -m pytest -q -p no:cacheprovider tests"\n',
}


def test_tests_failing_on_the_base_stop_the_job_before_any_request(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, FAILING_BASE)
    api.add(*talk.planner(), *talk.good_coder(), *talk.approve())
    rr.write_note(project, "FR-34", "Add sub", "Add `sub`.")

    run = run_fr(project, project.settings())

    assert run.job.state is JobState.FAILED
    error = run.job.error or ""
    assert error.startswith("the tests fail on `main` before any change")
    assert "1 failed" in error and "assert -1 == 5" in error
    assert api.requests == []
    assert run.ctx.store.stage_runs(run.job.id) == []


def test_baseline_warn_lets_an_fr_that_fixes_the_tests_run(
    api: MessagesAPI, tmp_path: Path
) -> None:
    project = rr.make_project_with(tmp_path, FAILING_BASE)
    api.add(
        *talk.planner(),
        *talk.coder({"calc.py": "def add(a, b):\n    return a + b\n"}, "Fixed add."),
        *talk.approve(),
    )  # fmt: skip
    rr.write_note(project, "FR-35", "Fix add", "add is wrong.")

    run = run_fr(project, _settings(project, baseline="warn"))

    assert run.outcome.kind == "awaiting_review", run.job.error
    assert run.job.spec["baseline"]["passed"] is False
    assert _events(run, "baseline")[0].startswith("baseline: 1 failed in ")
    assert "baseline: 1 failed" in _pr_body(project)
