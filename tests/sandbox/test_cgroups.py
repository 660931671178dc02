"""Finding where per-command cgroups can be made, and one command's cgroup life."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.sandbox.cgroups import (
    CgroupMount,
    CommandCgroup,
    cgroup_dir,
    find_cgroup_host,
    parse_memberships,
    parse_mounts,
)
from opus.sandbox.limits import Limits

# A container on a hybrid (v1 + v2) host, as /proc/self/{cgroup,mountinfo} show it.
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/fe6494a3
0::/
"""
HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
# A systemd service with Delegate=yes on a pure v2 host.
V2_CGROUP = "0::/system.slice/opus.service\n"
V2_MOUNTS = (
    "25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "30 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
)


def test_memberships_of_a_hybrid_host() -> None:
    found = parse_memberships(HYBRID_CGROUP)
    assert [(sorted(m.controllers), m.path) for m in found] == [
        (["name=systemd"], "/"),
        (["pids"], "/"),
        (["memory"], "/process_api/fe6494a3"),
        ([], "/"),
    ]


def test_mounts_of_a_hybrid_host() -> None:
    mounts = parse_mounts(HYBRID_MOUNTS)
    assert [(m.version, sorted(m.controllers - {"rw"}), str(m.mountpoint)) for m in mounts] == [
        (1, ["memory"], "/sys/fs/cgroup/memory"),
        (1, ["pids"], "/sys/fs/cgroup/pids"),
        (2, [], "/sys/fs/cgroup/unified"),
    ]


def test_a_v2_service_cgroup_maps_into_the_mount() -> None:
    (mount,) = parse_mounts(V2_MOUNTS)
    (member,) = parse_memberships(V2_CGROUP)
    assert cgroup_dir(mount, member.path) == Path("/sys/fs/cgroup/system.slice/opus.service")


def test_a_cgroup_namespace_root_is_stripped_and_outsiders_are_refused() -> None:
    mount = CgroupMount(2, frozenset(), "/system.slice/box.scope", Path("/sys/fs/cgroup"))
    assert cgroup_dir(mount, "/system.slice/box.scope/app") == Path("/sys/fs/cgroup/app")
    assert cgroup_dir(mount, "/system.slice/other.scope") is None


def test_mountpoints_with_spaces_are_unescaped() -> None:
    line = r"41 31 0:38 / /mnt/my\040cgroups rw - cgroup2 cgroup2 rw" + "\n"
    assert parse_mounts(line)[0].mountpoint == Path("/mnt/my cgroups")


def test_a_command_cgroup_is_made_limited_and_removed() -> None:
    host = find_cgroup_host()
    if host is None:
        pytest.skip("this host gives opus no writable cgroup")
    group = CommandCgroup.create(host, Limits(50, 128, 10, 10))
    assert group is not None
    assert (group.dirs[0] / "pids.max").read_text().strip() == "50"
    assert group.enter_argv()[:2] == ["/bin/sh", "-c"]
    group.remove()
    assert not any(path.exists() for path in group.dirs)
