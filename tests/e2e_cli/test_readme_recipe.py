"""The README's offline recipe, run as written: a new user's shell, the `command` engine,
the twenty-line agent, one FR delivered without any network.

The blocks are read from README.md (each follows an `<!-- offline-recipe: NAME -->`
marker), so the test fails when the README and the product drift apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import frontmatter
import pytest

from tests.conftest import run_git
from tests.e2e_cli.helpers import clean_env

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- offline-recipe: (\w+) -->\n(`{3,})\w*\n(.*?)\n\2\n", re.DOTALL)


def recipe() -> dict[str, str]:
    return {m[1]: m[3] + "\n" for m in BLOCK.finditer(README.read_text(encoding="utf-8"))}


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _add_under_headers(config: Path, toml_block: str) -> None:
    """What the README asks: each block's lines go right under the existing header."""
    text = config.read_text()
    for header, body in re.findall(r"^(\[\w+\])\n(.*?)(?=^\[|\Z)", toml_block, re.M | re.S):
        assert text.count(f"{header}\n") == 1, header
        text = text.replace(f"{header}\n", f"{header}\n{body.strip()}\n", 1)
    config.write_text(text)


@pytest.fixture
def home() -> Iterator[Path]:
    """A home directory outside /tmp: the sandbox gives commands a private /tmp, so an
    agent kept under /tmp would be invisible to them (a real home is not under /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="opus-recipe-home-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_offline_recipe_delivers_its_fr(home: Path, tmp_path: Path) -> None:
    blocks = recipe()
    assert set(blocks) == {"setup", "agent", "config", "note", "run"}
    assert len(blocks["agent"].splitlines()) <= 22, "the agent stays about twenty lines"
    shims = tmp_path / "bin"  # `opus` on PATH is this checkout
    shims.mkdir()
    (shims / "opus").write_text(f'#!/bin/sh\nexec {sys.executable} -m opus "$@"\n')
    (shims / "opus").chmod(0o755)
    # A new machine: no git identity anywhere (no ~/.gitconfig, no GIT_AUTHOR_* ...).
    env = {k: v for k, v in clean_env(home).items() if not k.startswith("GIT_")}
    env["PATH"] = f"{shims}:{env['PATH']}"

    setup = _bash(blocks["setup"], home, env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    project = home / "offline"
    agent = project / "opus-agent.sh"
    agent.write_text(blocks["agent"])
    agent.chmod(0o755)
    _add_under_headers(project / "opus.toml", blocks["config"])
    note = project / "vault" / "10_features" / "03_planned" / "FR-100.md"
    note.write_text(blocks["note"])

    run = _bash(blocks["run"], project, env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"FR-100\s+awaiting_review\s+deliver", run.stdout), run.stdout + run.stderr
    branch = "opus/fr-100-add-a-greeting"
    remote = project / "remote.git"
    assert run_git(remote, "show", f"{branch}:hello.txt") == "hello"
    review = project / "vault" / "10_features" / "05_review"
    assert frontmatter.load(review / "FR-100.md")["status"] == "review"
    assert list(review.glob("PR-FR-100-*.md")), "the PR is a note in 05_review"
