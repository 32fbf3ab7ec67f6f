"""An aggregate memory and process budget for a candidate's whole process tree: a cgroup.

cgroup v2 where this process may create a child group with the memory and pids controllers,
else the v1 `memory` and `pids` hierarchies, else None (the supervisor then polls the tree's
resident memory, and processes are limited per uid). Groups are made under this process's
own cgroup, one per candidate, and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, super options) of every cgroup mount."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            out.append((rest[0], fields[4], set(rest[2].split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per controller ('' = the v2 unified group)."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _parents() -> dict[str, Path] | None:
    """Where to create per-candidate groups: {'v2': dir} or {'memory': dir, 'pids': dir}."""
    try:
        mounts, own = _mounts(), _own_paths()
    except (OSError, ValueError):
        return None
    for fstype, point, _ in mounts:
        if fstype == "cgroup2" and "" in own:
            base = Path(point) / own[""].lstrip("/")
            ctl = base / "cgroup.subtree_control"
            with contextlib.suppress(OSError):
                if {"memory", "pids"} <= set(ctl.read_text().split()) and os.access(base, os.W_OK):
                    return {"v2": base}
    found = {}
    for fstype, point, opts in mounts:
        for c in ("memory", "pids"):
            if fstype == "cgroup" and c in opts and c in own:
                base = Path(point) / own[c].lstrip("/")
                if os.access(base, os.W_OK):
                    found[c] = base
    return found if len(found) == 2 else None


@lru_cache(maxsize=1)
def cgroup_support() -> str | None:
    """'v2' or 'v1' if per-candidate groups can be made (tried once), else None."""
    parents = _parents()
    if not parents:
        return None
    try:
        Cgroup.create(None).destroy()
    except OSError:
        return None
    return "v2" if "v2" in parents else "v1"


@dataclass
class Cgroup:
    """One candidate's group(s), with the memory and process limits written."""

    dirs: list[Path]
    version: str

    @classmethod
    def create(cls, limits) -> Cgroup:
        parents = _parents()
        if not parents:
            raise OSError("no writable cgroup")
        name = f"prunekit-{uuid.uuid4().hex[:12]}"
        dirs = [p / name for p in parents.values()]
        group = cls(dirs, "v2" if "v2" in parents else "v1")
        for d in dirs:
            d.mkdir()
        if limits is not None:
            group._limit(limits.memory_mb << 20, limits.nproc)
        return group

    def _limit(self, memory: int, nproc: int) -> None:
        values = (
            {"memory.max": memory, "memory.swap.max": 0, "pids.max": nproc}
            if self.version == "v2"
            else {
                "memory.limit_in_bytes": memory,
                "memory.memsw.limit_in_bytes": memory,
                "pids.max": nproc,
            }
        )
        for d in self.dirs:
            for key, value in values.items():
                if (d / key).exists():
                    with contextlib.suppress(
                        OSError
                    ):  # memsw/swap only where swap accounting is on
                        (d / key).write_text(str(value))

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        """True if the kernel killed a process of this group for memory."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def peak_mb(self) -> float:
        """The group's peak memory use so far, in MiB (0 where the kernel does not say)."""
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    return round(int((d / name).read_text()) / (1 << 20), 1)
        return 0.0

    def destroy(self) -> None:
        """Kill whatever is left in the group and remove it."""
        for _ in range(200):
            pids = set()
            for d in self.dirs:
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                break
            time.sleep(0.005)
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
