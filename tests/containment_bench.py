"""Spawn cost of starting a process inside a cgroup (the measurement behind ``spawn_in``).

Usage: python3 tests/containment_bench.py [SPAWNS]   (root, on a host with writable cgroup2)

Starts ``true`` SPAWNS times each way, in rounds so that all three share the machine's state:
plain ``posix_spawnp``; ``cgroups.spawn_in`` (the caller moves itself into the cgroup,
spawns, moves back); and ``fork``, the child writing itself into ``cgroup.procs`` and calling
``execvp``. Prints microseconds per spawn (spawn and reap).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "starforge_daemon" / "runtime" / "local"))
import cgroups
import containment

TRUE = shutil.which("true") or "/bin/true"


def plain(_: str) -> int:
    return os.posix_spawnp(TRUE, [TRUE], os.environ)


def self_move(cgroup: str) -> int:
    return cgroups.spawn_in(cgroup, [TRUE], os.environ)


def fork_exec(cgroup: str) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY)
            os.write(fd, b"0")
            os.execv(TRUE, [TRUE])
        finally:
            os._exit(127)
    return pid


def main(spawns: int) -> None:
    host = containment.detect(Path.cwd())
    if host.root is None:
        sys.exit(f"no cgroup here: {host.text}")
    root = os.path.join(os.path.dirname(host.root), f"starforge-bench-{uuid.uuid4().hex[:8]}")
    os.mkdir(root)
    found = containment.prepare(containment.detect(Path.cwd(), root=root))
    assert found.project is not None
    run = found.run("bench")
    assert run.cgroup is not None
    run.create()
    ways: dict[str, Callable[[str], int]] = {"posix_spawn": plain, "self-move": self_move,
                                             "fork+exec": fork_exec}
    costs: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for _ in range(10):
            for name, way in ways.items():
                start = time.perf_counter()
                for _ in range(spawns // 10):
                    os.waitpid(way(run.cgroup), 0)
                costs[name].append((time.perf_counter() - start) / (spawns // 10) * 1e6)
    finally:
        for folder in (run.cgroup, found.project, root):
            cgroups.kill_all(folder)
    print(found.text)
    for name, rounds in costs.items():
        print(f"{name:12} {statistics.median(rounds):7.0f} µs per spawn (median of 10 rounds, "
              f"{min(rounds):.0f}-{max(rounds):.0f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
