"""Proof that the tests see the worktree, not some other checkout of the same code.

Checked once the worktree's environment is set up, before the baseline and before any
token. Per ecosystem:

- **Python**: the import name comes from the base commit's `pyproject.toml`
  (`[project] name`, `-` → `_`) when `src/<name>/`, `<name>/` or `src/<name>.py` exists
  there. In the sandbox, with the worktree's environment first on PATH, `python3`
  imports it and prints `__file__`; a file outside the worktree (an editable install of
  the main checkout, a site-packages copy) stops the job with what to change. A package
  that does not import at all is left to the baseline run, whose output says why (tests
  may put `src` on `sys.path` themselves, e.g. pytest's `pythonpath` option).
- **Node**: tests import the code by relative path, so they see the worktree by
  construction; what must be the worktree's own is `node_modules`, which must be a plain
  directory inside the worktree (a symlink to another checkout's is refused).
- Other ecosystems (cargo, go, make) build from the working directory itself.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from opus.errors import NotReady
from opus.pipeline.safe_read import is_plain_dir
from opus.pipeline.tester import RepoView
from opus.pipeline.workenv import NODE_MODULES, env_prefix
from opus.seams import Sandbox

PROBE_TIMEOUT_S = 60.0
_MARK = "OPUS-MODULE-FILE="
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def python_import_name(view: RepoView, files: set[str]) -> str | None:
    """The package the repo's tests import, from the pyproject name; None when unsure.

    `files` are the base commit's paths (from `git ls-tree -r --name-only`).
    """
    try:
        project = tomllib.loads(view.read("pyproject.toml") or "").get("project")
    except tomllib.TOMLDecodeError:
        return None
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(name, str):
        return None
    module = re.sub(r"[-.]+", "_", name).lower()
    candidates = (f"src/{module}/__init__.py", f"{module}/__init__.py", f"src/{module}.py")
    if not _NAME.match(module) or not any(path in files for path in candidates):
        return None
    return module


def check_python(sandbox: Sandbox, worktree: Path, module: str) -> str | None:
    """Raise `NotReady` when `module` imports from outside `worktree`.

    Returns the file it imports from, or None when it does not import at all.
    """
    probe = (
        f"python3 -c 'import importlib; m = importlib.import_module(\"{module}\"); "
        f"print(\"{_MARK}\" + str(getattr(m, \"__file__\", None)))'"
    )
    result = sandbox.run(
        env_prefix(worktree) + probe, worktree=worktree, timeout_s=PROBE_TIMEOUT_S,
        writable=False,
    )
    found = [line for line in result.output.splitlines() if line.startswith(_MARK)]
    if result.exit_code != 0 or not found:
        return None
    where = found[-1].removeprefix(_MARK).strip()
    resolved = os.path.realpath(where)
    if not Path(resolved).is_relative_to(worktree.resolve()):
        raise NotReady(
            f"the tests would import `{module}` from {where}, not from the worktree "
            f"{worktree}, so they would not test opus's change; install the package into "
            "the worktree's own environment with a setup command, e.g. in the repo's "
            '.opus.toml: setup = "python3 -m venv .opus-venv && .opus-venv/bin/pip '
            'install -e .[test]" (or `setup:` in the note)'
        )
    return where


def check_node(worktree: Path) -> None:
    """Raise `NotReady` when `node_modules` is a link (another checkout's packages)."""
    path = worktree / NODE_MODULES
    if path.is_symlink() or (path.exists() and not is_plain_dir(path)):
        raise NotReady(
            f"{path} is not a directory of the worktree's own (a symlink?); the tests "
            "would run another checkout's packages. Let the setup command install them "
            "(e.g. `npm ci`)"
        )
