"""Where the shadow process's idle CPU cgroup goes: /proc parsing on written files, the real kernel where allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import can_make_idle_cpu_groups, ended_pid
from workbench.serving._cpu_priority import GROUP_PREFIX, cpu_cgroup_dir, make_idle_group, remove_group

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2_MOUNTS = "29 23 0:26 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"


def _proc(tmp_path: Path, *, cgroup: str, mountinfo: str) -> str:
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text(mountinfo)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("cgroup", "mountinfo", "expected"),
    [
        # cgroup v1, cpu co-mounted with cpuacct (the v2 line of a hybrid system is not the CPU's)
        ("3:cpuset:/\n2:cpu,cpuacct:/system.slice/workbench.service\n0::/user.slice\n", V1_MOUNTS.format(root="/"),
         "/sys/fs/cgroup/cpu,cpuacct/system.slice/workbench.service"),
        ("2:cpu,cpuacct:/\n0::/\n", V1_MOUNTS.format(root="/"), "/sys/fs/cgroup/cpu,cpuacct"),
        # a container mounts only its part of the hierarchy: its cgroup is the mount's root
        ("2:cpu,cpuacct:/docker/abc\n", V1_MOUNTS.format(root="/docker/abc"), "/sys/fs/cgroup/cpu,cpuacct"),
        ("2:cpu,cpuacct:/docker/abc/serve\n", V1_MOUNTS.format(root="/docker/abc"),
         "/sys/fs/cgroup/cpu,cpuacct/serve"),
        # cgroup v2 alone
        ("0::/system.slice/workbench.service\n", V2_MOUNTS.format(root="/"),
         "/sys/fs/cgroup/system.slice/workbench.service"),
        # outside the mounted part (a name sharing the root's prefix is not inside it)
        ("2:cpu,cpuacct:/docker/abcdef\n", V1_MOUNTS.format(root="/docker/abc"), None),
        ("0::/elsewhere\n", V2_MOUNTS.format(root="/mine"), None),
        # no CPU hierarchy mounted; unreadable lines
        ("2:cpu,cpuacct:/\n", "33 31 0:30 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n", None),
        ("garbage\n", "nonsense line\n\n", None),
    ],
)
def test_the_cpu_cgroup_folder_is_found_from_proc(tmp_path: Path, cgroup: str, mountinfo: str,
                                                  expected: str | None) -> None:
    found = cpu_cgroup_dir(proc=_proc(tmp_path, cgroup=cgroup, mountinfo=mountinfo))
    assert (str(found) if found is not None else None) == expected


def test_without_proc_files_there_is_no_cpu_cgroup(tmp_path: Path) -> None:
    assert cpu_cgroup_dir(proc=str(tmp_path / "missing")) is None


def test_a_folder_that_is_not_a_cgroup_gets_no_group_and_keeps_nothing(tmp_path: Path) -> None:
    # A plain folder has no kernel-made cpu.idle: nothing is created in it, nothing is left.
    assert make_idle_group(1, base=tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_groups_of_dead_serving_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = ended_pid()
    for name in (f"{GROUP_PREFIX}{dead}-1", f"{GROUP_PREFIX}{os.getpid()}-7", f"{GROUP_PREFIX}x-1", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / f"{GROUP_PREFIX}{dead}-2").mkdir()
    (tmp_path / f"{GROUP_PREFIX}{dead}-2" / "busy").write_text("")  # not empty: a task still in it
    make_idle_group(1, base=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{GROUP_PREFIX}{os.getpid()}-7", f"{GROUP_PREFIX}{dead}-2", "other"])


@pytest.mark.skipif(not can_make_idle_cpu_groups(), reason="this machine lets no process make an idle CPU cgroup")
def test_a_real_idle_group_is_made_joined_and_removed() -> None:
    group = make_idle_group(99)
    assert group is not None and group.name == f"{GROUP_PREFIX}{os.getpid()}-99"
    try:
        assert (group / "cpu.idle").read_text().strip() == "1"
        child = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from workbench.serving._cpu_priority import cpu_cgroup_dir, lower_priority; "
             "lower_priority(Path(sys.argv[1])); print(cpu_cgroup_dir())", str(group)],
            capture_output=True, text=True, check=True, timeout=60)
        assert child.stdout.strip() == str(group)
    finally:
        remove_group(group)
    assert not group.exists()
