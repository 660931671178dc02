"""A pipe that tells a starting command whether the process that started it still lives.

`--die-with-parent` arms `PR_SET_PDEATHSIG` in each bwrap process only once it runs, and
bwrap's sandbox child arms it only after the whole mount setup, right before it execs
the command: an owner killed in those milliseconds leaves a command nobody will ever
stop (measured: 12 of 20 kills 10 ms into a command). So every process keeps a pipe
whose write end only it holds; commands get the read end, and the shell inside the
sandbox, which starts after every bwrap process armed its death signal, first checks
it: end of file means the owner is gone, and the command exits instead of running.
"""

from __future__ import annotations

import contextlib
import os
import threading

from opus.sandbox.process import shell

OWNER_GONE_EXIT = 125
"""How a command whose owner died before it started exits (nobody is left to read it)."""

_lock = threading.Lock()
_pipes: dict[int, tuple[int, int]] = {}


def owner_fd() -> int:
    """The read end of this process's owner pipe (made once per process)."""
    with _lock:
        pipe = _pipes.get(os.getpid())
        if pipe is None:
            pipe = os.pipe()  # both ends close on exec; Popen's pass_fds opens the read end
            _pipes[os.getpid()] = pipe
        return pipe[0]


def _forget_in_child() -> None:
    # A forked child must neither keep its parent's write end (the parent's commands
    # would outlive the parent) nor reuse it as its own.
    for read_end, write_end in _pipes.values():
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)
    _pipes.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def guarded_shell_argv(command: str, fd: int) -> list[str]:
    """Run `command` in the shell unless the owner pipe `fd` is at end of file.

    The user's command is handed over untouched (`$1`), with `fd` closed, so its line
    numbers and `$0` are what they would be without the guard. Without bash (whose
    `read -t 0` tests the pipe) the command runs unguarded.
    """
    sh = shell()
    if not sh.endswith("bash"):
        return [sh, "-c", command]
    guard = f'read -t 0 -u {fd} && exit {OWNER_GONE_EXIT}; exec {fd}<&- "$0" -c "$1"'
    return [sh, "-c", guard, sh, command]
