"""What the daemon learns of a run whose keeper died: its agent, then its end.

The agent outlives the keeper (its output goes to its log file, not through the keeper) and is
handed to the keeper's parent, the reaper, which appends the agent's exit to the run's journal
before it reaps it. So when the daemon sees the agent end, its exit status is either still
shown by the kernel (the zombie is not reaped yet) or already in the journal. A run whose
output is read as events has its account read back from its log.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from starforge_daemon.core.models import ProcessIdentity, RunExit
from starforge_daemon.core.streams import Summary
from starforge_daemon.core.streams.reports import summary_from_dict
from starforge_daemon.runtime.local import processes, stream_reader, sweep
from starforge_daemon.store.atomic import append_json_line
from starforge_daemon.store.journal import find_entry

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Output:
    """Where a run's output goes and how it is read (``LaunchSpec.output``)."""

    log: Path
    kind: str


REAPER_WAIT = 5.0  # seconds to wait for the reaper's word on an agent spawned unjournalled


@dataclass(frozen=True)
class Spawn:
    """What the journal says of a run's spawn: ``begun`` (the keeper's first line for it), its
    agent once spawned, and its end when the agent is already gone."""

    begun: bool
    agent: ProcessIdentity | None
    ended: RunExit | None = None


def journalled_spawn(runs: Path, run_id: str) -> Spawn:
    """The spawn of a run the keeper had not reported when it died. One it began but did not
    journal (it died in between) has its agent found by its run id, and journalled here, so
    that the reaper can record its exit; else the reaper says how it went (the agent's exit,
    or ``unspawned``). Both are awaited together for at most REAPER_WAIT (a short wait, in
    this rare case only): an agent the keeper was spawning carries its run id once it has
    exec'd, and the reaper waits for that too."""
    deadline = time.monotonic() + REAPER_WAIT
    while True:
        entry = find_entry(runs, run_id)
        if entry is None:
            return Spawn(False, None)
        if entry.agent is not None or not entry.spawning:
            return Spawn(entry.spawning or entry.agent is not None, entry.agent)
        if entry.ended is not None:  # the reaper recorded the exit of the unjournalled agent
            return Spawn(True, None, entry.ended)
        agent = _unjournalled_agent(run_id)
        if agent is not None:
            with contextlib.suppress(OSError):
                append_json_line(entry.path, {"run_id": run_id, "started": {
                    "pid": agent.pid, "start": agent.start}})
            return Spawn(True, agent)
        if time.monotonic() > deadline:
            return Spawn(True, None)
        time.sleep(0.02)


def _unjournalled_agent(run_id: str) -> ProcessIdentity | None:
    """The first process spawned for the run: the earliest leader of its own session (the
    keeper spawns agents with ``setsid``) among the processes carrying its run id."""
    found = []
    for pid in sweep.sweep_members(run_id):
        with contextlib.suppress(OSError):
            if os.getsid(pid) == pid:
                found.append(ProcessIdentity(pid=pid, start=processes.process_start(pid)))
    return min(found, key=lambda agent: agent.start, default=None)


def orphan_exit(runs: Path, run_id: str, agent: ProcessIdentity,
                output: Output | None) -> RunExit | None:
    """How the agent of a run whose keeper died ended, once it has; None when no process
    knows (its parent was not the reaper, or the reaper could not write it)."""
    code = processes.zombie_exit(agent.pid, agent.start)
    ended: RunExit | None
    if code is not None:
        ended = RunExit(ended_at=time.time(), exit_code=code)
    else:
        entry = find_entry(runs, run_id)
        ended = entry.ended if entry is not None else None
    return with_account(ended, output)


def with_account(ended: RunExit | None, output: Output | None) -> RunExit | None:
    """``ended`` with the run's own account read back from its log, where its output is read
    as events and nobody read it to its end."""
    if ended is None or ended.stream is not None or output is None:
        return ended
    return replace(ended, stream=_account(output))


def _account(output: Output) -> Summary | None:
    """The run's own account, read from its log as the keeper would have read it."""
    stream = stream_reader.open_stream(output.kind)
    if stream is None:
        return None
    with contextlib.suppress(OSError):
        fd = os.open(output.log, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while chunk := os.read(fd, _CHUNK):
                stream.feed(chunk, time.time())
        finally:
            os.close(fd)
    return summary_from_dict(stream.finish())
