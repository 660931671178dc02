"""What counting the process limit in a user namespace costs a `sandbox.kind = "none"`
command, against counting the user's processes from /proc.

Run as a normal user (root is never held to RLIMIT_NPROC, so neither applies):
    PYTHONPATH=src python3 bench/none_nproc.py [rounds]
Prints the median wall time of `true` each way.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from command_timing import median_ms, rounds_arg

from opus.sandbox import nproc
from opus.sandbox.limits import Limits
from opus.sandbox.process import ShellRunner

LIMITS = Limits(max_processes=512, max_memory_mb=4096, max_file_mb=1024, max_cpu_s=1800)


def main() -> None:
    if os.geteuid() == 0:
        sys.exit("run this as a normal user: root is not held to RLIMIT_NPROC")
    rounds = rounds_arg()
    runner = ShellRunner(output_cap_bytes=10_000, limits=LIMITS, cgroup_host=None)
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp)
        if nproc.own_namespace_argv() is None:
            print("unshare cannot make a user namespace here: only the /proc count applies")
        else:
            print(f"true, counted in its own user namespace: {median_ms(runner, wt, rounds):.1f} ms"
                  f" (median of {rounds})")
        nproc._probed[os.geteuid()] = None  # as on a host without unshare
        print(f"true, counted over the user's processes:  {median_ms(runner, wt, rounds):.1f} ms")


if __name__ == "__main__":
    main()
