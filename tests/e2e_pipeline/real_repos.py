"""Small real projects shaped like the ones users point opus at.

- `PYTHON_FILES`: a src-layout package (`src/greeting_kit/`) whose `_version.py` is
  generated and gitignored (as hatch-vcs does), with a `tools/dev_install.py` that the
  developer (and opus's setup) runs: it writes `_version.py` and installs the package
  editable into a virtualenv — a `.pth` path entry to `src/`, which is what an editable
  install is (pip's needs a build backend and `wheel`, not installed offline here).
- `NPM_FILES`: a package whose tests need `node_modules` (a local `file:` dependency, so
  `npm ci` needs no registry), with its lockfile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo, run_git
from tests.e2e_pipeline.harness import Project

GREET = (
    "from greeting_kit._version import VERSION\n\n\n"
    "def greet(name: str) -> str:\n"
    '    return f"Hello, {name}!"\n'
)
GREET_BROKEN = GREET.replace('f"Hello, {name}!"', 'f"Hi {name}"')
GREET_WITH_FAREWELL = GREET + '\n\ndef farewell(name: str) -> str:\n    return f"Bye, {name}!"\n'
TEST_GREET = (
    "from greeting_kit import VERSION, greet\n\n\n"
    "def test_greet():\n"
    '    assert greet("Ada") == "Hello, Ada!"\n\n\n'
    "def test_version_is_generated():\n"
    '    assert VERSION == "1.4.2"\n'
)
TEST_FAREWELL = (
    "from greeting_kit import farewell\n\n\n"
    "def test_farewell():\n"
    '    assert farewell("Ada") == "Bye, Ada!"\n'
)
DEV_INSTALL = '''\
"""Developer install: generate _version.py, then an editable install into a venv."""
import os
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "src", "greeting_kit", "_version.py"), "w") as out:
    out.write('VERSION = "1.4.2"\\n')
venv = os.path.abspath(sys.argv[1])
subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                venv], check=True)
purelib = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
with open(os.path.join(purelib, "greeting_kit.pth"), "w") as pth:
    pth.write(os.path.join(ROOT, "src") + "\\n")
print("installed greeting_kit from", os.path.join(ROOT, "src"), "into", venv)
'''
SETUP = "python3 tools/dev_install.py .opus-venv"
PY_TEST_COMMAND = "python3 -m pytest -q -p no:cacheprovider tests"
PYTHON_FILES = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "greeting-kit"\ndynamic = ["version"]\n\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
    ),
    "src/greeting_kit/__init__.py": GREET.replace(
        "from greeting_kit._version import VERSION\n",
        "from greeting_kit._version import VERSION\n\n__all__ = ['VERSION', 'greet']\n",
    ),
    "tests/test_greet.py": TEST_GREET,
    "tools/dev_install.py": DEV_INSTALL,
    ".gitignore": "src/greeting_kit/_version.py\n*.egg-info/\n__pycache__/\n",
    ".opus.toml": f'setup = "{SETUP}"\ntest_command = "{PY_TEST_COMMAND}"\n',
}

PAD = "module.exports = (value, width) => String(value).padStart(width, '0');\n"
NPM_INDEX = "const pad = require('pad');\n\nexports.ticket = (n) => `T-${pad(n, 4)}`;\n"
NPM_INDEX_WITH_RANGE = NPM_INDEX + "\nexports.tickets = (a, b) => " \
    "Array.from({length: b - a + 1}, (_, i) => exports.ticket(a + i));\n"
NPM_TEST = (
    "const assert = require('node:assert');\nconst { ticket } = require('./index');\n\n"
    "assert.strictEqual(ticket(7), 'T-0007');\nconsole.log('# pass 1');\n"
)
NPM_TEST_WITH_RANGE = NPM_TEST.replace(
    "console.log('# pass 1');\n",
    "const { tickets } = require('./index');\n"
    "assert.deepStrictEqual(tickets(1, 2), ['T-0001', 'T-0002']);\nconsole.log('# pass 2');\n",
)
NPM_FILES = {
    "package.json": json.dumps({
        "name": "tickets", "version": "1.0.0", "private": True,
        "scripts": {"test": "node test.js"}, "dependencies": {"pad": "file:vendor/pad"},
    }, indent=2) + "\n",
    "package-lock.json": json.dumps({
        "name": "tickets", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
        "packages": {
            "": {"name": "tickets", "version": "1.0.0",
                 "dependencies": {"pad": "file:vendor/pad"}},
            "node_modules/pad": {"resolved": "vendor/pad", "link": True},
            "vendor/pad": {"version": "1.0.0"},
        },
    }, indent=2) + "\n",
    "vendor/pad/package.json": '{"name": "pad", "version": "1.0.0", "main": "index.js"}\n',
    "vendor/pad/index.js": PAD,
    "index.js": NPM_INDEX,
    "test.js": NPM_TEST,
    ".gitignore": "node_modules/\n",
}  # fmt: skip


def make_project_with(root: Path, files: dict[str, str], *, remote: bool = True) -> Project:
    """A repo holding `files` on `main` (pushed to a bare `origin` when `remote`) and an
    empty vault."""
    repo = make_repo(root / "repo", files)
    bare = root / "remote.git"
    if remote:
        run_git(root, "init", "-q", "--bare", "-b", "main", str(bare))
        run_git(repo, "remote", "add", "origin", str(bare))
        run_git(repo, "push", "-q", "origin", "main")
    vault = root / "vault"
    (vault / "10_features" / "03_planned").mkdir(parents=True)
    return Project(root=root, repo=repo, remote=bare, vault=vault)


def developer_install(repo: Path, venv: Path) -> Path:
    """What the developer did in the main checkout: generate, install editable. → bin/"""
    subprocess.run([sys.executable, str(repo / "tools" / "dev_install.py"), str(venv)],
                   check=True, capture_output=True, cwd=repo)
    return venv / "bin"


def write_note(project: Project, fr_id: str, title: str, body: str, *extra: str) -> Path:
    """A planned FR note with extra frontmatter lines."""
    front = [f"id: {fr_id}", f"title: {title}", "status: planned", *extra]
    note = project.vault / "10_features" / "03_planned" / f"{fr_id}.md"
    note.write_text("---\n" + "\n".join(front) + "\n---\n# Summary\n\n" + body + "\n")
    return note


def tree_of(repo: Path, ref: str) -> list[str]:
    return run_git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
