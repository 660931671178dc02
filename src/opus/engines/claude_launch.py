"""How one `claude -p` process runs: in the job's sandbox, or directly without one.

In the sandbox (`sandbox.kind = "bwrap"`) claude runs through `Sandbox.run`, granted the
network and its credential (`claude_access.py`): the worktree is the only writable
place (for the planner and the reviewer only its scratch folder), the state dir and the
user's credentials (`~/.claude` among them) are hidden, the limits hold and the stage's
timeout kills its whole process group. `Sandbox.run` takes one shell command and merges
stdout with stderr, so the long arguments, the prompt that goes through stdin, and
claude's stdout and stderr are files in the worktree's scratch folder, removed after
the run.

With `sandbox.kind = "none"` claude runs as it always did: directly, with opus's own
environment and the user's claude config, in its own process group.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opus.engines.base import SCRATCH_DIR
from opus.engines.claude_access import claude_grant, config_dir
from opus.errors import EngineError
from opus.seams import Sandbox

INLINE_ARG_CHARS = 1000
"""A longer argument goes into a file the shell reads (`"$(cat file)"`): one argv string
may not exceed 128 KiB, and the shell command holds all of them."""


@dataclass(frozen=True)
class Finished:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool


def run_sandboxed(
    argv: Sequence[str],
    *,
    stdin: str | None,
    sandbox: Sandbox,
    worktree: Path,
    environ: Mapping[str, str],
    timeout_s: float,
    writable: bool,
) -> Finished:
    """Run `argv` in `sandbox`, granted what claude needs, with `worktree` as cwd
    (read-only but for the scratch folder unless `writable`)."""
    scratch = worktree / SCRATCH_DIR
    config_dir(scratch).mkdir(parents=True, exist_ok=True)
    try:
        command = shell_command(argv, stdin=stdin, scratch=scratch)
        granted = sandbox.granting(claude_grant(environ, scratch))
        result = granted.run(command, worktree=worktree, timeout_s=timeout_s, writable=writable)
        stderr = _read(scratch / "stderr.log") + result.output  # the sandbox's own words
        return Finished(result.exit_code, _read(scratch / "stdout.json"), stderr, result.timed_out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def shell_command(argv: Sequence[str], *, stdin: str | None, scratch: Path) -> str:
    """The shell command that execs `argv` with its long arguments read from files
    written into `scratch`, `stdin` fed from a file, stdout and stderr into files."""
    words = [_word(arg, scratch / f"arg-{index}") for index, arg in enumerate(argv)]
    source = "/dev/null"
    if stdin is not None:
        source = str(_write(scratch / "stdin.md", stdin))
    redirects = f"<{shlex.quote(source)} >{shlex.quote(str(scratch / 'stdout.json'))}"
    return f"exec {' '.join(words)} {redirects} 2>{shlex.quote(str(scratch / 'stderr.log'))}"


def _word(arg: str, file: Path) -> str:
    if len(arg) <= INLINE_ARG_CHARS:
        return shlex.quote(arg)
    # Command substitution drops trailing newlines, which no prompt needs.
    return f'"$(cat {shlex.quote(str(_write(file, arg)))})"'


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def run_direct(argv: list[str], *, cwd: Path, stdin: str | None, timeout_s: float) -> Finished:
    """Run `argv` unsandboxed in its own process group; the whole group is killed on
    timeout (`sandbox.kind = "none"`)."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise EngineError(f"cannot start {argv[0]}: {exc}; check agents.claude_bin") from exc
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return Finished(proc.returncode, stdout, stderr, timed_out=True)
    return Finished(proc.returncode, stdout, stderr, timed_out=False)
