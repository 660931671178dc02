"""What the resource limits cost per command, and how long a fork bomb takes to stop.

Run: PYTHONPATH=src python3 bench/sandbox_limits.py [rounds]
Prints the median wall time of `true` in the bwrap sandbox with and without the limits
(prlimit inside, a cgroup per command when the host allows one).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from command_timing import median_ms, rounds_arg

from opus.config import SandboxConfig
from opus.sandbox import BwrapSandbox, limits_in_force, sandbox_for


def main() -> None:
    rounds = rounds_arg()
    limited = sandbox_for(SandboxConfig())
    assert isinstance(limited, BwrapSandbox)
    bare = sandbox_for(SandboxConfig())
    assert isinstance(bare, BwrapSandbox)
    bare.limits, bare.cgroup_host = None, None
    print("limits:", limits_in_force(SandboxConfig())[1])
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp)
        print(f"true without limits: {median_ms(bare, wt, rounds):.1f} ms (median of {rounds})")
        print(f"true with limits:    {median_ms(limited, wt, rounds):.1f} ms")


if __name__ == "__main__":
    main()
