"""One persistent bash process per stage, inside the sandbox: the `bash` tool's session.

Anthropic's bash tool documents a session that keeps its state between calls: the working
directory, variables and functions a command sets are there for the next command, and
`restart: true` starts a fresh one. opus keeps one `bash --noprofile --norc` per stage,
started through `Sandbox.start` (so it sees exactly what a `Sandbox.run` command sees: the
worktree the only writable place, secrets removed, no network), reading commands on stdin.

Each command is sent as one line, `eval $'<command, escaped>' </dev/null`, followed by a
line printing a marker with a random per-session token, `$?` and `$PWD`; output is read
up to that marker. `eval` runs in the session's own shell, so `cd`, `export` and functions
persist; stdin is /dev/null, so a command that reads stdin cannot eat the next one. A
command that outlives its timeout has the whole session killed (its process group, and
with bwrap its PID namespace); so does one that makes the shell exit. The next command
then starts a new session in the worktree root, and the result says so.

The sandbox covers the host's unix sockets it can see when it starts (a socket ignores
read-only mounts). Before each command the session asks it whether a socket was bound
on the host since, that it could reach; if so, the shell is restarted in a sandbox that
covers it, in the same working directory when that is inside the worktree (the marker
line carries `$PWD`), and the command's output starts with a line saying so.
"""

from __future__ import annotations

import os
import re
import secrets
import selectors
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from opus.errors import SandboxError
from opus.sandbox.disk import CHECK_EVERY_S
from opus.sandbox.limits import LIMIT_NOTE_PREFIX, SANDBOX_NOTE_PREFIX
from opus.sandbox.process import (
    READ_CHUNK,
    RESTART_PAUSE_S,
    START_ATTEMPTS,
    TIMEOUT_EXIT_CODE,
    CappedOutput,
    covers_kept_vanishing,
)
from opus.seams import Sandbox, SandboxProcess

SHELL_COMMAND = "exec bash --noprofile --norc"
# Bytes kept from the end of the stream to find the marker even when split across reads:
# room for the token, the exit code and a quoted PATH_MAX-long working directory.
_WINDOW = 20_000
# Characters bash's $'...' quoting can carry unescaped.
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./,:=+@%")


@dataclass(frozen=True)
class SessionResult:
    """What one command did in the session."""

    exit_code: int
    output: str
    timed_out: bool = False
    shell_exited: bool = False
    """The shell itself ended (`exit`, `exec`, a crash): the next command gets a new one."""
    restarted_for: tuple[Path, ...] = ()
    """Host sockets that appeared since the previous command: the shell was restarted in
    a sandbox covering them before this command ran (its output starts with a note)."""


def quote(command: str) -> str:
    """`command` as a bash `$'...'` word: every byte that is not plainly safe is `\\xHH`."""
    data = command.encode("utf-8")
    return "$'" + "".join(chr(b) if b in _PLAIN else f"\\x{b:02x}" for b in data) + "'"


class BashSession:
    """A lazily started, restartable bash process in `worktree` through `sandbox`."""

    def __init__(
        self, sandbox: Sandbox, worktree: Path, *, writable: bool, output_cap_bytes: int = 200_000
    ) -> None:
        self.sandbox = sandbox
        self.worktree = worktree
        self.writable = writable
        self.output_cap_bytes = output_cap_bytes
        self._live: SandboxProcess | None = None
        self._token = ""
        self._cwd: Path | None = None
        """The shell's working directory after its last command, when known."""

    @property
    def running(self) -> bool:
        """True while a shell process is alive."""
        return self._live is not None and self._live.proc.poll() is None

    def run(self, command: str, *, timeout_s: float) -> SessionResult:
        """Run `command` in the session; a new session is started if none is alive."""
        if "\0" in command:
            raise SandboxError("the command contains a NUL byte, which bash cannot run")
        deadline = time.monotonic() + timeout_s
        appeared, cwd = self._renew_cover()
        for attempt in range(START_ATTEMPTS):
            fresh = not self.running
            proc = self._ensure()
            live = self._live
            result = self._send(proc, command, cwd, deadline)
            # A new shell whose sandbox stopped in its setup (a socket to cover vanished
            # meanwhile) never ran the command: start it again.
            if not (fresh and result.shell_exited and live and live.cover_vanished(result.output)):
                break
            time.sleep(RESTART_PAUSE_S * (attempt + 1))
        else:
            raise covers_kept_vanishing(result.output)
        if not appeared:
            return result
        note = restart_note(appeared, cwd)
        return replace(result, output=note + result.output, restarted_for=tuple(appeared))

    def restart(self) -> None:
        """End the current shell (if any); the next command starts a fresh one."""
        self.close()

    def close(self) -> None:
        """Kill the shell and everything it started."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    # ------------------------------------------------------------------ internals

    def _send(
        self, proc: subprocess.Popen[bytes], command: str, cwd: Path | None, deadline: float
    ) -> SessionResult:
        """Write `command` (after a `cd` to `cwd`, if given) and the marker line to the
        shell, and read its result."""
        assert proc.stdin is not None
        # The marker line: the token, the exit code, and $PWD quoted on one line.
        script = f"eval {quote(command)} </dev/null\n"
        script += f"builtin printf '\\n{self._token} %s %q\\n' \"$?\" \"$PWD\"\n"
        if cwd is not None:
            script = f"builtin cd -- {quote(str(cwd))} 2>/dev/null\n{script}"
        try:
            proc.stdin.write(script.encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the shell is gone; reading below sees EOF and reports it
        return self._collect(proc, deadline=deadline)

    def _renew_cover(self) -> tuple[list[Path], Path | None]:
        """Restart a live shell whose sandbox misses a host socket bound since it started.

        Returns the sockets that made it restart, and the directory the new shell should
        go to (the old one's, when it is inside the worktree).
        """
        live = self._live
        if live is None or live.proc.poll() is not None:
            return [], None
        appeared = live.uncovered_sockets()
        if not appeared:
            return [], None
        cwd = self._cwd
        self.close()
        keep = cwd is not None and cwd != self.worktree and cwd.is_relative_to(self.worktree)
        return appeared, cwd if keep else None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._live is not None and self._live.proc.poll() is None:
            return self._live.proc
        self.close()
        self._token = f"__OPUS_DONE_{secrets.token_hex(8)}__"
        self._cwd = None
        self._live = self.sandbox.start(
            SHELL_COMMAND, worktree=self.worktree, writable=self.writable
        )
        return self._live.proc

    def _collect(self, proc: subprocess.Popen[bytes], *, deadline: float) -> SessionResult:
        assert proc.stdout is not None
        output = CappedOutput(self.output_cap_bytes)
        window = bytearray()
        marker = re.compile(rb"\n" + re.escape(self._token.encode()) + rb" (\d+) ([^\n]*)\n")
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        next_check = time.monotonic() + CHECK_EVERY_S
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    self.close()
                    return SessionResult(TIMEOUT_EXIT_CODE, output.text(), timed_out=True)
                if now >= next_check:
                    next_check = now + CHECK_EVERY_S
                    if self._live is not None and self._live.over_limit() is not None:
                        return self._stopped_at_limit(output)
                if not selector.select(timeout=min(remaining, 0.5)):
                    continue
                chunk = _read(fd)
                if chunk is None:
                    continue
                if not chunk:  # EOF: the shell is gone
                    return self._exited(proc, output)
                output.add(chunk)
                window = (window + chunk)[-_WINDOW:]
                found = marker.search(window)
                if found:
                    code = int(found.group(1))
                    self._cwd = unquoted_path(found.group(2))
                    return self._noted(SessionResult(code, _strip_marker(output, self._token)))

    def _exited(self, proc: subprocess.Popen[bytes], output: CappedOutput) -> SessionResult:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = -1
        result = self._noted(SessionResult(code, output.text(), shell_exited=True))
        self.close()
        return result

    def _stopped_at_limit(self, output: CappedOutput) -> SessionResult:
        """The running command took the worktree past its cap: the session is ended (as
        on a timeout) and the result names the limit."""
        result = self._noted(SessionResult(1, output.text(), shell_exited=True))
        self.close()
        return result

    def _noted(self, result: SessionResult) -> SessionResult:
        """`result` with a last line naming the resource limit it hit, as `Sandbox.run`
        gives; a command that left the worktree over its cap is reported failed."""
        live = self._live
        note = live.limit_hit(result.exit_code, result.output) if live is not None else None
        if note is None:
            return result
        output = result.output if result.output.endswith("\n") or not result.output else (
            result.output + "\n"
        )
        return replace(
            result,
            exit_code=result.exit_code or 1,
            output=f"{output}{LIMIT_NOTE_PREFIX}{note}\n",
        )


def restart_note(sockets: list[Path], cwd: Path | None) -> str:
    """The line that starts the output of a command run in a just-restarted shell."""
    names = ", ".join(str(path) for path in sockets)
    where = f"in {cwd}" if cwd is not None else "in the worktree root"
    return (
        f"{SANDBOX_NOTE_PREFIX}the bash session was restarted before this command: a unix "
        f"socket bound on the host since it started ({names}) was reachable from it, and "
        f"the new sandbox covers it. Variables, functions and background processes from "
        f"before are gone; the new shell runs {where}.\n"
    )


def unquoted_path(quoted: bytes) -> Path | None:
    """The path bash's `printf %q` printed, when it used backslash quoting only (an
    `$'...'` form, for control characters, is not worth decoding: None)."""
    text = quoted.decode("utf-8", errors="replace")
    if not text.startswith("/") or "\ufffd" in text:
        return None
    return Path(re.sub(r"\\(.)", r"\1", text))


def _read(fd: int) -> bytes | None:
    """Available bytes, b"" at EOF, None when nothing was ready after all."""
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return None


def _strip_marker(output: CappedOutput, token: str) -> str:
    """The command's own output: without the newline and marker line the session added."""
    text = output.text()
    cut = text.rfind("\n" + token)
    return text[:cut] if cut >= 0 else text
