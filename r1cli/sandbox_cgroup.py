"""A per-sandbox control group: one bound on the memory and the processes of all a program's tests.

RLIMIT_AS bounds one process; a program that forks gets that much again per process, and memfds
and tmpfs pages sit outside it. A cgroup counts them all (anonymous memory, page cache, shmem,
tmpfs) and every process, so a sandbox with one gets ``memory.max`` = `Limits.memory_mb` and
``pids.max`` = `Limits.processes` for everything its tests do together.

The parent makes the group (it needs write access to a cgroup directory: root, or a delegated
subtree), hands the sandbox open descriptors of its ``cgroup.procs`` files, and each test process
joins by writing "0" there before the program starts (the descriptor was opened by the parent,
and the kernel checks migration against the opener's credentials). After the run the parent
kills what is left in the group and removes it.

Both hierarchies are handled: cgroup v2 (``memory`` and ``pids`` enabled in the parent group's
``subtree_control``) and the v1 ``memory`` and ``pids`` controllers. Where neither can be made
`create` returns None and the sandbox forbids fork instead (see `r1cli.sandbox_seccomp`).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass

_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Cgroup:
    """The directories of one sandbox's group: one (v2) or two (v1: memory, pids)."""

    dirs: tuple[str, ...]
    events: str  # where the OOM-kill count is read: memory.events (v2) or memory.oom_control (v1)
    version: int

    @property
    def procs(self) -> tuple[str, ...]:
        return tuple(os.path.join(d, "cgroup.procs") for d in self.dirs)


def _own(controller: str) -> str | None:
    """This process's cgroup path for a v1 `controller`, or for v2 when `controller` is ''."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(",") if controller else names == "":
                    return path
    except (OSError, ValueError):
        pass
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _bases() -> tuple[int, tuple[str, ...]] | None:
    """The cgroup directories new groups go under: (2, (dir,)) or (1, (memory dir, pids dir))."""
    own = _own("")
    if own is not None and os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):
        base = os.path.join(_ROOT, own.lstrip("/"))
        try:
            with open(os.path.join(base, "cgroup.subtree_control"), encoding="ascii") as f:
                enabled = f.read().split()
        except OSError:
            return None
        if {"memory", "pids"} <= set(enabled):
            return 2, (base,)
        return None  # enabling them would move this process out of its group (v2: no internal processes)
    found = []
    for controller in ("memory", "pids"):
        path = _own(controller)
        if path is None or not os.path.isdir(os.path.join(_ROOT, controller)):
            return None
        found.append(os.path.join(_ROOT, controller, path.lstrip("/")))
    return 1, tuple(found)


def create(memory_mb: int, processes: int, pid: int) -> Cgroup | None:
    """A new group bounded to `memory_mb` (swap included) and `processes`; None where none can be made."""
    bases = _bases()
    if bases is None:
        return None
    version, parents = bases
    _sweep(parents[0])
    name = f"r1-sandbox-{pid}-{secrets.token_hex(6)}"
    dirs: list[str] = []
    try:
        for parent in parents:
            path = os.path.join(parent, name)
            os.mkdir(path)
            dirs.append(path)
        limit = str(memory_mb << 20)
        if version == 2:
            _write(os.path.join(dirs[0], "memory.max"), limit)
            if os.path.exists(os.path.join(dirs[0], "memory.swap.max")):
                _write(os.path.join(dirs[0], "memory.swap.max"), "0")
            _write(os.path.join(dirs[0], "pids.max"), str(processes))
            return Cgroup(tuple(dirs), os.path.join(dirs[0], "memory.events"), 2)
        _write(os.path.join(dirs[0], "memory.limit_in_bytes"), limit)
        memsw = os.path.join(dirs[0], "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):  # swap accounting on: bound memory + swap too
            _write(memsw, limit)
        _write(os.path.join(dirs[1], "pids.max"), str(processes))
        return Cgroup(tuple(dirs), os.path.join(dirs[0], "memory.oom_control"), 1)
    except OSError:
        for path in reversed(dirs):
            _rmdir(path)
        return None


def _sweep(parent: str) -> None:
    """Remove the groups of processes that ended without removing theirs (r1 itself SIGKILLed)."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("r1-sandbox-")]
    except OSError:
        return
    for pid in {n.split("-")[2] for n in names}:
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            remove_of(int(pid))


def remove_of(pid: int) -> int:
    """Destroy the groups that process `pid` (ended: a scoring worker killed mid-run) left; how many."""
    bases = _bases()
    if bases is None:
        return 0
    version, parents = bases
    prefix, removed = f"r1-sandbox-{pid}-", 0
    try:
        names = sorted(n for n in os.listdir(parents[0]) if n.startswith(prefix))
    except OSError:
        return 0
    for name in names:
        dirs = tuple(os.path.join(p, name) for p in parents)
        events = os.path.join(dirs[0], "memory.events" if version == 2 else "memory.oom_control")
        destroy(Cgroup(tuple(d for d in dirs if os.path.isdir(d)), events, version))
        removed += 1
    return removed


def oom_kills(text: str) -> int:
    """The ``oom_kill`` count in memory.events (v2) or memory.oom_control (v1) text.

    >>> oom_kills("oom_kill_disable 0\\nunder_oom 0\\noom_kill 3\\n")
    3
    """
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def destroy(group: Cgroup) -> None:
    """Kill every process still in the group, then remove it."""
    if group.version == 2 and os.path.exists(os.path.join(group.dirs[0], "cgroup.kill")):
        try:
            _write(os.path.join(group.dirs[0], "cgroup.kill"), "1")
        except OSError:
            pass
    end = time.monotonic() + 2.0
    for path in group.procs:
        while time.monotonic() < end:
            try:
                with open(path, encoding="ascii") as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                break
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.002)
    for path in reversed(group.dirs):
        _rmdir(path)


def _rmdir(path: str) -> None:
    for _ in range(100):  # the last exiting process leaves the group a moment after its SIGKILL
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.002)
