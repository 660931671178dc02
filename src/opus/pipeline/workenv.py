"""The worktree's own environment: a setup command, run once, and proof the tests use it.

A fresh worktree has the repo's tracked files and nothing else: no virtualenv, no
`node_modules`, no generated (gitignored) files like a hatch-vcs `_version.py`. Its tests
would otherwise import whatever is installed for the main checkout — so a change that
breaks the code would pass. The setup command builds the worktree's environment *inside*
the worktree, in the sandbox (with network only when `sandbox.setup_network` allows):

- the FR's `setup:`, else `setup = "..."` in the base commit's `.opus.toml`, else
- detected from the base commit: a pyproject with a `[project]` table →
  `python3 -m venv --system-site-packages .opus-venv && .opus-venv/bin/python -m pip
  install -e .[test]` (the `test`/`tests`/`testing`/`dev` extra when there is one);
  a lockfile → `npm ci` (`yarn install --frozen-lockfile`, `pnpm install
  --frozen-lockfile`).

It runs once per worktree and again only when its inputs change (the command, or the
blobs of pyproject/setup files, package.json or a lockfile at HEAD), or when the
environment it built was changed since (its fingerprint: an agent could edit the venv's
`pytest` to pass; the environment is then removed and built again). The record of the
last run is kept in the worktree's git admin dir, which the sandbox mounts read-only,
so an agent cannot fake it; a rebuilt worktree has no record and runs setup again.
Test commands then run with `env_prefix`: the worktree's `.opus-venv/bin` and
`node_modules/.bin` first on PATH. `.opus-venv/` and `node_modules/` are listed in the
repository's `info/exclude`, so opus never commits them and never cleans them away.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from opus.git import git
from opus.pipeline.safe_read import is_plain_dir
from opus.pipeline.sandbox_hints import sandbox_hint, strip_ansi
from opus.pipeline.tester import RepoView
from opus.seams import Sandbox

VENV = ".opus-venv"
NODE_MODULES = "node_modules"
EXCLUDED = (f"/{VENV}/", f"/{NODE_MODULES}/")
PY_EXTRAS = ("test", "tests", "testing", "dev")
SETUP_INPUTS = (
    "pyproject.toml", "setup.cfg", "setup.py", "requirements.txt", "requirements-dev.txt",
    "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock",
    "pnpm-lock.yaml",
)  # fmt: skip
STAMP = "opus-setup.json"
# Package managers keep caches under $HOME, which the sandbox keeps read-only; and
# test runners behave as in CI (no watch mode, no prompts, plain output) with CI=1.
CACHE_ENV = (
    'export CI="${CI:-1}" npm_config_cache="${TMPDIR:-/tmp}/opus-npm-cache" '
    'PIP_CACHE_DIR="${TMPDIR:-/tmp}/opus-pip-cache" npm_config_update_notifier=false; '
)
LOCKFILE_INSTALLS = (
    ("package-lock.json", "npm ci --no-audit --no-fund"),
    ("npm-shrinkwrap.json", "npm ci --no-audit --no-fund"),
    ("yarn.lock", "yarn install --frozen-lockfile"),
    ("pnpm-lock.yaml", "pnpm install --frozen-lockfile"),
)


@dataclass(frozen=True)
class SetupOutcome:
    """One setup run (or the decision that the cached one still holds)."""

    command: str
    ran: bool
    ok: bool = True
    exit_code: int = 0
    duration_s: float = 0.0
    output_tail: str = ""
    hint: str = ""

    def report(self) -> str:
        """The failure as a user or coder reads it: command, exit code, hint, output tail."""
        hint = f"; {self.hint}" if self.hint else ""
        return f"setup `{self.command}` exited {self.exit_code}{hint}\n{self.output_tail}"


def detect_setup(view: RepoView) -> str | None:
    """The setup command a repo's files suggest, or None when it needs none."""
    names = view.top_level()
    commands = []
    if "pyproject.toml" in names:
        commands.append(_python_setup(view.read("pyproject.toml")))
    for lockfile, install in LOCKFILE_INSTALLS:
        if lockfile in names and "package.json" in names:
            commands.append(install)
            break
    found = [command for command in commands if command]
    return " && ".join(found) or None


def _python_setup(pyproject: str | None) -> str | None:
    try:
        project = tomllib.loads(pyproject or "").get("project")
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(project, dict):
        return None
    extras = project.get("optional-dependencies")
    extra = next((e for e in PY_EXTRAS if isinstance(extras, dict) and e in extras), None)
    target = f".[{extra}]" if extra else "."
    return (
        f"python3 -m venv --system-site-packages {VENV} && "
        f"{VENV}/bin/python -m pip install --quiet -e {shlex.quote(target)}"
    )


def env_prefix(worktree: Path) -> str:
    """Shell that puts the worktree's environment first on PATH (empty when it has none)."""
    venv, bins = worktree / VENV, worktree / NODE_MODULES / ".bin"
    parts = [str(path / "bin") for path in (venv,) if is_plain_dir(path)]
    parts += [str(bins)] if is_plain_dir(worktree / NODE_MODULES) else []
    if not parts:
        return CACHE_ENV
    path = ":".join(shlex.quote(part) for part in parts)
    virtual_env = f" VIRTUAL_ENV={shlex.quote(str(venv))}" if is_plain_dir(venv) else ""
    return f'{CACHE_ENV}export PATH={path}:"$PATH"{virtual_env}; '


def exclude_generated(worktree: Path) -> None:
    """List `.opus-venv/` and `node_modules/` in the repo's `info/exclude` (once)."""
    common = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=worktree))
    exclude = common / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    present = exclude.read_text(errors="replace").splitlines() if exclude.is_file() else []
    missing = [line for line in EXCLUDED if line not in present]
    if missing:
        with exclude.open("a", encoding="utf-8") as handle:
            lead = "\n" if present and present[-1] else ""
            handle.write(lead + "# opus: the worktree environment\n" + "\n".join(missing) + "\n")


def setup_key(worktree: Path, command: str) -> str:
    """What decides whether setup must run again: the command and its input blobs at HEAD."""
    tree = git("ls-tree", "HEAD", "--", *SETUP_INPUTS, cwd=worktree, check=False)
    return hashlib.sha256(f"{command}\n{tree}".encode()).hexdigest()


def ensure_setup(
    sandbox: Sandbox, worktree: Path, command: str, *, timeout_s: float, tail_bytes: int
) -> SetupOutcome:
    """Run `command` in `worktree` unless it already ran for the same inputs and the
    environment it built is untouched.

    The environment lives in the writable worktree, so an agent could edit it (a
    `pytest` that always passes). Its fingerprint is kept with the record; when it no
    longer matches, the environment is removed and built again before the gate runs.
    """
    key = setup_key(worktree, command)
    stamp = _stamp_path(worktree)
    recorded = _stamped(stamp)
    if recorded.get("key") == key and recorded.get("fingerprint") == fingerprint(worktree):
        return SetupOutcome(command, ran=False)
    if recorded.get("key") == key:
        _remove_environment(worktree)  # tampered with since setup: start clean
    result = sandbox.run(CACHE_ENV + command, worktree=worktree, timeout_s=timeout_s)
    output = strip_ansi(result.output)
    ok = result.exit_code == 0 and not result.timed_out
    outcome = SetupOutcome(
        command,
        ran=True,
        ok=ok,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output_tail=output[-tail_bytes:],
        hint="" if ok else sandbox_hint(output),
    )
    if ok:
        record = {"key": key, "command": command, "fingerprint": fingerprint(worktree)}
        stamp.write_text(json.dumps(record), encoding="utf-8")
    return outcome


def refresh_fingerprint(worktree: Path) -> None:
    """Take the environment's fingerprint again after a run opus made (the gate's own
    test run writes caches there, e.g. `__pycache__`)."""
    stamp = _stamp_path(worktree)
    record = _stamped(stamp)
    if record:
        record["fingerprint"] = fingerprint(worktree)
        stamp.write_text(json.dumps(record), encoding="utf-8")


def fingerprint(worktree: Path) -> str:
    """A hash of every entry's path, kind, size and mtime under the worktree's
    environment dirs (`lstat` only: links are not followed)."""
    digest = hashlib.sha256()
    for name in (VENV, NODE_MODULES):
        top = worktree / name
        if not is_plain_dir(top):
            digest.update(f"{name}:absent\n".encode())
            continue
        for directory, subdirs, files in os.walk(top):
            subdirs.sort()
            for entry in sorted(files + subdirs):
                path = os.path.join(directory, entry)
                info = os.lstat(path)
                rel = os.path.relpath(path, worktree)
                digest.update(f"{rel}\0{info.st_mode}\0{info.st_size}\0"
                              f"{info.st_mtime_ns}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def _remove_environment(worktree: Path) -> None:
    for name in (VENV, NODE_MODULES):
        path = worktree / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)


def _stamp_path(worktree: Path) -> Path:
    return Path(git("rev-parse", "--absolute-git-dir", cwd=worktree)) / STAMP


def _stamped(stamp: Path) -> dict[str, str]:
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
