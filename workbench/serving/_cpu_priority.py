"""The shadow process's CPU priority: an idle CPU cgroup where one can be made, else the lowest priority.

The shadow process (:mod:`workbench.serving.shadow_process`) must run on the CPU time the serving
process and its clients leave over. What the kernel offers, best first:

1. **An idle CPU cgroup** (``cpu.idle = 1``, Linux 5.15+, cgroup v1 ``cpu`` controller or v2): the
   group's tasks are SCHED_IDLE against every other group, so any task that wakes up (the server,
   its client) takes the CPU from the shadow process at once. It takes a cgroup this process may
   create below its own with the ``cpu`` controller: root on cgroup v1; on cgroup v2 only below the
   root cgroup, as a cgroup holding processes cannot enable controllers for its children (moving the
   serving process into a leaf of a delegated cgroup would allow it: not done). The serving process
   makes it (``make_idle_group``) and moves the child into it as it starts (``move_into``; the child
   joins it itself otherwise, ``lower_priority``), and removes it once the child has exited.
2. **Its session's autogroup at nice 19** (``CONFIG_SCHED_AUTOGROUP``, where the process is in the
   root CPU cgroup): the lowest weight a group can have, but a weight. On a core it shares with
   the server, the shadow's p99 at one connection was 1.5-1.8x champion-only
   (``benchmarks/shadow_decompose.py --pinned client-apart``), against 1.0x with a core to itself.
3. **SCHED_IDLE**, else nice 19: it yields to the serving process, inside whatever group holds both.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger("workbench.serving.shadow_process")

CHILD_AUTOGROUP_NICE = 19  # the nice of the child's own autogroup: the least weight
GROUP_PREFIX = "workbench-shadow-"  # <prefix><serving process's pid>-<n>: one group per child started


def _lines(path: str) -> list[str]:
    with open(path) as fh:
        return fh.read().splitlines()


def _write_existing(path: Path, text: str) -> None:
    """Write to a file the kernel made (a cgroup's); never create one (OSError when it is not there)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _cpu_cgroup_paths(proc: str) -> tuple[str | None, str | None]:
    """The process's cgroup path in the cgroup v1 ``cpu`` hierarchy and in cgroup v2 (None where it has none).

    From ``<proc>/cgroup``; OSError when it cannot be read.
    """
    memberships = [line.split(":", 2) for line in _lines(f"{proc}/cgroup") if line.count(":") >= 2]
    v1 = next((path for _, controllers, path in memberships if "cpu" in controllers.split(",")), None)
    v2 = next((path for hierarchy, _, path in memberships if hierarchy == "0"), None)
    return v1, v2


def cpu_cgroup_dir(*, proc: str = "/proc/self") -> Path | None:
    """The folder of the process's CPU cgroup: in the cgroup v1 ``cpu`` hierarchy, else in cgroup v2's.

    From ``<proc>/cgroup`` (the cgroup's path in each hierarchy) and ``<proc>/mountinfo`` (where
    each hierarchy is mounted, and which part of it: a container sees its own cgroup as ``/``).
    None when neither is mounted or readable.
    """
    try:
        v1, v2 = _cpu_cgroup_paths(proc)
        mounts = [line.split() for line in _lines(f"{proc}/mountinfo")]
    except OSError:
        return None
    for fields in mounts:
        if "-" not in fields or len(fields) < 5:
            continue
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3].split(",") if len(fields) > dash + 3 else []
        root, mount_point = fields[3], fields[4]
        if fstype == "cgroup" and "cpu" in options and v1 is not None:
            path = v1
        elif fstype == "cgroup2" and v1 is None and v2 is not None:
            path = v2
        else:
            continue
        relative = os.path.relpath(path, root) if path.startswith(root) else None
        if relative is None or relative.startswith(".."):
            return None  # this process's cgroup is outside the mounted part of the hierarchy
        return Path(mount_point) / ("" if relative == "." else relative)
    return None


def _owner_alive(name: str) -> bool:
    try:
        pid = int(name[len(GROUP_PREFIX):].split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _sweep(base: Path) -> None:
    """Remove the empty groups of serving processes that died before removing them (killed, say)."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if entry.name.startswith(GROUP_PREFIX) and not _owner_alive(entry.name):
                with contextlib.suppress(OSError):  # not empty (EBUSY): its child still runs
                    entry.rmdir()


def make_idle_group(index: int, *, base: Path | None = None) -> Path | None:
    """A new idle CPU cgroup (``cpu.idle`` 1) below this process's, for its ``index``-th shadow child.

    None where the kernel has no ``cpu.idle``, the cgroup cannot be created (no permission, a
    read-only ``/sys/fs/cgroup``) or has no ``cpu`` controller (cgroup v2 without delegation):
    the child then falls back (see the module docstring). Nothing is left behind on failure.
    """
    base = base or cpu_cgroup_dir()
    if base is None:
        return None
    _sweep(base)
    group = base / f"{GROUP_PREFIX}{os.getpid()}-{index}"
    try:
        group.mkdir()
    except OSError:
        return None
    try:
        _write_existing(group / "cpu.idle", "1")  # absent: no cpu controller here, or not a cgroup
    except OSError:
        remove_group(group)
        return None
    return group


def move_into(group: Path, pid: int) -> bool:
    """Move process ``pid`` (every thread of it, cgroup v1 and v2) into ``group``; False if not allowed."""
    try:
        _write_existing(group / "cgroup.procs", str(pid))
    except OSError as exc:
        logger.warning("could not move process %d into the idle CPU group %s (%s)", pid, group, exc)
        return False
    return True


def remove_group(group: Path | None) -> None:
    """Remove ``group`` (once its child has exited; a group still holding a task stays)."""
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


def _autogroup_applies() -> bool:
    """Whether the kernel schedules this process by its session's autogroup (Linux ``CONFIG_SCHED_AUTOGROUP``).

    It does when autogrouping is on and the process is in the root CPU cgroup (cgroup v1 ``cpu``
    controller, or a v2 cgroup without the ``cpu`` controller); in any other CPU cgroup the
    cgroup is the group instead.
    """
    try:
        if _lines("/proc/sys/kernel/sched_autogroup_enabled") != ["1"]:
            return False
        v1, v2 = _cpu_cgroup_paths("/proc/self")
        if v1 is not None:  # cgroup v1
            return v1 == "/"
        if v2 is None or v2 == "/":  # no CPU cgroup at all, or cgroup v2's root
            return True
        return "cpu" not in " ".join(_lines(f"/sys/fs/cgroup{v2}/cgroup.controllers")).split()
    except OSError:
        return False


def lower_priority(group: Path | None = None) -> None:
    """Put this process (the shadow child, still single-threaded) on the CPU time others leave over.

    In ``group`` (made by :func:`make_idle_group`) if given: the serving process moved it there as
    it started, else it joins now; where it may not, it falls back as the module docstring says.
    """
    if group is not None and (cpu_cgroup_dir() == group or move_into(group, os.getpid())):
        return
    if _autogroup_applies():
        try:
            with open("/proc/self/autogroup", "w") as fh:
                fh.write(str(CHILD_AUTOGROUP_NICE))
            return
        except OSError:
            pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
