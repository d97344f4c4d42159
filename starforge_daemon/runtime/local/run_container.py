"""One run's container, whichever the host offers: its cgroup, or the sweep by its run id.
Standard library only (see ``containment``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if __package__:
    from . import cgroup_spawn, cgroups, processes, sweep
else:  # beside keeper.py, run as a script (python3 -I -S): plain sibling modules
    import cgroup_spawn
    import cgroups
    import processes
    import sweep

if TYPE_CHECKING:
    from resource import struct_rusage


class RunEnd(NamedTuple):
    """``left``: processes still there at the deadline (empty: the container is empty)."""

    usage: processes.Usage
    left: tuple[int, ...]
    removed: bool  # the run's cgroup is gone (always True for a sweep)
    killed: bool = False  # processes were left at the run's end and killed through the cgroup



class RunContainer(NamedTuple):
    """One run's container: its cgroup, or (``cgroup`` None) the sweep by its run id.

    ``shared``: the cgroup is its agent's, kept from one run of that agent to the next (at most
    one runs at a time), emptied at each run's end but not removed: making and removing a
    cgroup per run costs the keeper more than the rest of a short run's handling. The CPU
    figure is then the difference from ``cpu_mark`` taken before the spawn.

    ``session`` is the run's first pid (spawned with ``setsid``): the sweep also takes the
    processes of that session.
    """

    run_id: str
    cgroup: str | None = None
    shared: bool = False
    held: cgroups.HeldFiles | None = None  # its files, open

    def create(self, limits: Mapping[str, str] | None = None) -> list[str]:
        """Make the run's cgroup (nothing to do for a sweep); notes on limits not set."""
        if self.cgroup is None:
            return [f"{name}={value}: no cgroup" for name, value in (limits or {}).items()]
        return cgroups.create_run_cgroup(self.cgroup, limits, exist_ok=self.shared)

    def hold(self) -> RunContainer:
        """This container with its cgroup's files open, for a shared cgroup's run after run."""
        assert self.cgroup is not None
        return self._replace(held=cgroups.HeldFiles(self.cgroup))

    def cpu_mark(self) -> float:
        """CPU seconds the cgroup has used so far (0 for a cgroup of this run alone)."""
        if not self.shared or self.cgroup is None:
            return 0.0
        return cgroups.cgroup_usage(self.cgroup, memory=False).cpu_seconds or 0.0

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], **spawn: Any) -> int:
        """Start the run's first process (``processes.spawn_program`` arguments) in the container."""
        if self.cgroup is None:
            return processes.spawn_program(list(argv), env, **spawn)
        return cgroup_spawn.spawn_in(self.cgroup, argv, env, self.held, **spawn)

    def members(self, session: int | None = None) -> list[int]:
        if self.cgroup is None:
            return sweep.sweep_members(self.run_id, session)
        return cgroups.cgroup_members(self.cgroup)

    def signal(self, signum: int, session: int | None = None) -> int:
        """Send ``signum`` to every process of the run (the graceful stop)."""
        if self.cgroup is None:
            return sweep.sweep_signal(self.run_id, signum, session)
        return cgroups.signal_all(self.cgroup, signum) if os.path.isdir(self.cgroup) else 0

    def end(self, session: int | None = None, rusage: struct_rusage | None = None,
            timeout: float = processes.KILL_TIMEOUT, *, remove: bool = True,
            cpu_mark: float = 0.0) -> RunEnd:
        """Kill whatever is left of the run, account for it and (``remove``) remove its cgroup.

        The keeper removes an emptied cgroup only after it has reported the run's end
        (``remove=False``, then ``remove``): the run's next trigger need not wait for it.
        """
        if self.cgroup is None:
            usage = sweep.sweep_usage(sweep.sweep_members(self.run_id, session), rusage)
            return RunEnd(usage, sweep.sweep_kill(self.run_id, session, timeout), True)
        if self.held is None and not os.path.isdir(self.cgroup):
            return RunEnd(processes.Usage(None, None, None, False, "the run's cgroup was gone"), (), True)
        deadline = time.monotonic() + timeout
        if cgroups.populated(self.cgroup, self.held):
            # without the memory controller, peak memory is sampled before the kill, as the
            # sweep does
            sampled = sweep.sweep_usage(cgroups.cgroup_members(self.cgroup), rusage).peak_memory
            if not cgroups.kill_members(self.cgroup, deadline):
                left = tuple(cgroups.cgroup_members(self.cgroup))
                return RunEnd(_with_peak(cgroups.cgroup_usage(self.cgroup), sampled), left, False,
                              killed=True)
            killed = True
        else:  # the common end: nothing left behind
            sampled, killed = sweep.sweep_usage((), rusage).peak_memory, False
        # before the removal; a shared cgroup is never one with the memory controller
        usage = _with_peak(cgroups.cgroup_usage(self.cgroup, not self.shared, self.held), sampled)
        if cpu_mark and usage.cpu_seconds is not None:
            usage = usage._replace(cpu_seconds=max(0.0, usage.cpu_seconds - cpu_mark))
        if not remove or self.shared:
            return RunEnd(usage, (), False, killed)
        result = cgroups.remove_emptied(self.cgroup, deadline)
        return RunEnd(usage, result.left, result.removed, killed)

    def remove(self, timeout: float = processes.KILL_TIMEOUT) -> bool:
        """Remove the emptied container (after ``end(remove=False)``); whether it is gone."""
        if self.cgroup is None or self.shared:
            return self.cgroup is None
        return cgroups.remove_emptied(self.cgroup, time.monotonic() + timeout).removed


def _with_peak(usage: processes.Usage, sampled: int | None) -> processes.Usage:
    """The cgroup's usage, its peak memory sampled where the cgroup has no ``memory.peak``."""
    if usage.peak_memory is not None or sampled is None:
        return usage
    return usage._replace(peak_memory=sampled,
                          note="peak memory sampled (no memory controller for runs): the first "
                               "process and its reaped children, and processes left at the end")
