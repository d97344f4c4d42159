"""What containing a run costs the keeper: a run of ``true`` started and ended three ways.

    python3 bench/containment_cost.py [RUNS]     (needs a writable cgroup2 hierarchy: root here)

- ``plain``: ``posix_spawn`` and ``wait4``, no container (the baseline);
- ``cgroup per run``: a cgroup made, entered for the spawn, emptied, read and removed per run;
- ``agent's cgroup``: 16 agents' cgroups made once, each run entering and emptying its agent's,
  its files held open and its CPU counted from the figure read at the previous run's end (what
  the keeper does where no memory controller measures each run's peak).

The three alternate in rounds; prints the medians of wall and CPU time (this process's user and
system) per run, and the difference from the baseline, as a markdown table.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable

from scratch_cgroup import containment, scratch_containment

TRUE = shutil.which("true") or "/bin/true"
AGENTS = 16
ROUNDS = 5


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # µs resolution; os.times() has ticks
    return usage.ru_utime + usage.ru_stime


def _measure(found: containment.Containment, runs: int,
             ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU microseconds per run, each way, one figure per round."""
    shared = [found.run(f"run-{n}", f"agent-{n:02d}") for n in range(AGENTS)]
    marks: dict[int, float] = {}  # as the keeper keeps them: CPU counted at the previous end

    def plain(_: int) -> None:
        os.wait4(os.posix_spawnp(TRUE, [TRUE], os.environ), 0)

    def per_run(number: int) -> None:
        container = found.run(f"run-{uuid.uuid4().hex[:12]}")
        container.create()
        pid = container.spawn([TRUE], os.environ)
        _, _, usage = os.wait4(pid, 0)
        container.end(session=pid, rusage=usage, remove=False)
        container.remove()

    def agents(number: int) -> None:
        agent = number % AGENTS
        container = shared[agent]
        if agent not in marks:
            container.create()
            container = shared[agent] = container.hold()
        mark = marks.pop(agent, None) or container.cpu_mark()
        pid = container.spawn([TRUE], os.environ)
        _, _, usage = os.wait4(pid, 0)
        end = container.end(session=pid, rusage=usage, remove=False, cpu_mark=mark)
        marks[agent] = mark + (end.usage.cpu_seconds or 0.0)

    ways: dict[str, Callable[[int], None]] = {"plain": plain, "cgroup per run": per_run,
                                              "agent's cgroup": agents}
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, way in ways.items():
            started, used = time.perf_counter(), _cpu()
            for number in range(runs // ROUNDS):
                way(number)
            wall[name].append((time.perf_counter() - started) / (runs // ROUNDS) * 1e6)
            cpu[name].append((_cpu() - used) / (runs // ROUNDS) * 1e6)
    for container in shared:
        if container.held is not None:
            container.held.close()
    return wall, cpu


def main(runs: int) -> None:
    with scratch_containment("cost") as found:
        wall, cpu = _measure(found, runs)
    base_wall, base_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    print(f"{runs} runs of `true` each way, medians of {ROUNDS} rounds; {found.text}\n")
    print("| way | wall per run | CPU per run | CPU over plain |")
    print("|---|---|---|---|")
    for name in wall:
        median_wall, median_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        extra = "" if name == "plain" else f"+{median_cpu - base_cpu:.0f} µs"
        print(f"| {name} | {median_wall:.0f} µs | {median_cpu:.0f} µs | {extra} |")
    print(f"\n(plain: {base_wall:.0f} µs wall, {base_cpu:.0f} µs CPU)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
