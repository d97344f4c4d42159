"""The keeper's parent, which outlives it: whoever kills the keeper, its agents' exit statuses
are still recorded.

The keeper's process forks at start: the child serves (the keeper proper), the parent becomes a
child subreaper (``PR_SET_CHILD_SUBREAPER``) and only waits. Agents are the keeper's children;
when the keeper dies they are handed to this process, the nearest subreaper above them, instead
of to init, which would discard their exit status. Each one that then exits has its status
appended to its run's journal, found by its pid and start time among the ``started`` lines of
the runs folder, before it is reaped: until that line is written the zombie stays, and anyone
watching it can read its status from ``/proc`` (``processes.zombie_exit``). Processes an agent
left behind are reaped too. The reaper exits once the keeper and every orphan are gone and no
journal line waits.

Imported by the keeper as a sibling module: standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import time
from typing import Any

if __package__:
    from . import journal_file, processes
else:
    import journal_file
    import processes

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Whether orphans below this process now come to it (not inherited by a fork's child)."""
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def exit_code(info: os.waitid_result) -> int:
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _journals(runs: str) -> list[str]:
    try:
        names = os.listdir(runs)
    except OSError:
        return []
    return [os.path.join(runs, name) for name in sorted(names, reverse=True)
            if name.endswith(".jsonl")]


SPAWN_WINDOW = 2.0  # seconds from a spawn's journal line to its agent's start, at most


def _unended_runs(runs: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(journal, run id, its lines merged)`` of every run in the journals with no exit."""
    found = []
    for path in _journals(runs):
        runs_here: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(OSError):
            for line in processes.read_bytes(path).splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict) and isinstance(record.get("run_id"), str):
                        runs_here.setdefault(record["run_id"], {}).update(record)
        found += [(path, run_id, seen) for run_id, seen in runs_here.items()
                  if "exit" not in seen and "done" not in seen]
    return found


def _begun_unjournalled(seen: dict[str, Any]) -> bool:
    """The keeper began this run's spawn and said nothing more of it."""
    return "spawning" in seen and "started" not in seen and "unspawned" not in seen


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent``, from ``/proc``."""
    children = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(processes.stat_fields(int(name))[1]) == parent:
                    children.append(int(name))
    return children


EXEC_WAIT = 1.0  # seconds, at most, for a spawn the keeper died in to exec


def _await_exec(children: list[int]) -> None:
    """Return once none of ``children`` is a spawn the keeper died in the middle of (at most
    EXEC_WAIT). Until it execs, such a child shares the keeper's memory, so its command line is
    this process's own (the keeper is a fork of it), and it may not have left the keeper's
    session yet: it would not be taken for the agent it is about to become."""
    own = processes.read_bytes("/proc/self/cmdline")
    deadline = time.monotonic() + EXEC_WAIT
    for pid in children:
        with contextlib.suppress(OSError):
            while processes.read_bytes(f"/proc/{pid}/cmdline") == own \
                    and processes.stat_fields(pid)[0] != b"Z" and time.monotonic() < deadline:
                time.sleep(0.001)


class Reaper:
    def __init__(self, keeper_pid: int, runs: str, since: float) -> None:
        self._keeper_pid = keeper_pid
        self._runs = runs
        self._keeper_alive = True
        self._waiting: list[journal_file.JournalFile] = []
        self._since = since  # when its keeper was forked: only the spawns it began are its own

    def serve(self) -> None:
        while True:
            flags = os.WEXITED | os.WNOWAIT | (os.WNOHANG if self._waiting else 0)
            try:
                info = os.waitid(os.P_ALL, 0, flags)
            except ChildProcessError:
                info = None
                if not self._waiting:
                    return
            if info is None:  # a journal line waits for the disk
                self._retry()
                time.sleep(journal_file.RETRY_INTERVAL)
                continue
            if info.si_pid == self._keeper_pid:
                self._keeper_alive = False
                os.waitpid(info.si_pid, 0)
                self._unspawned()
                continue
            if not self._keeper_alive or self._keeper_died():
                self._record(info)
            os.waitpid(info.si_pid, 0)

    def _begun_by_mine(self, seen: dict[str, Any]) -> bool:
        """This reaper's keeper began the run's spawn and did not journal it. Only its own: a
        spawn another keeper began (one that died before, whose agent has its own reaper, or
        the next one) may be as recent."""
        return _begun_unjournalled(seen) and seen.get("keeper") == self._keeper_pid \
            and float(seen.get("spawning") or 0) >= self._since

    def find_run(self, pid: int, start: float, leader: bool) -> tuple[str, str] | None:
        """The journal and id of the run whose agent is that process, with no exit recorded:
        the run whose ``started`` line names it, or, for the leader of its own session (as
        agents are), the run whose spawn this keeper began shortly before the process started
        but did not journal (it died in between: it spawns one run at a time, so there is at
        most one)."""
        begun: list[tuple[str, str]] = []
        for path, run_id, seen in _unended_runs(self._runs):
            started = seen.get("started")
            if isinstance(started, dict):
                if (started.get("pid") == pid
                        and abs(float(started.get("start", 0)) - start) < 0.05):
                    return path, run_id
            elif leader and self._begun_by_mine(seen) \
                    and -0.05 < start - float(seen["spawning"]) < SPAWN_WINDOW:
                begun.append((path, run_id))
        return begun[0] if len(begun) == 1 else None

    def _unspawned(self) -> None:
        """The keeper is gone, and every agent it spawned is a child of this process now (or
        was, and its exit is recorded). A spawn it began and did not journal, with no such
        child, never happened: say so in the run's journal, so that the run is asked of a new
        keeper rather than called lost. Zombies are recorded first."""
        with contextlib.suppress(ChildProcessError):
            while (info := os.waitid(os.P_ALL, 0,
                                     os.WEXITED | os.WNOHANG | os.WNOWAIT)) is not None:
                self._record(info)
                os.waitpid(info.si_pid, 0)
        spawned = set()
        children = _children(os.getpid())
        _await_exec(children)
        for pid in children:
            with contextlib.suppress(OSError, ValueError):
                fields = processes.stat_fields(pid)
                found = self.find_run(pid, processes.start_of(fields), int(fields[3]) == pid)
                if found is not None:
                    spawned.add(found[1])
        for path, run_id, seen in _unended_runs(self._runs):
            if self._begun_by_mine(seen) and run_id not in spawned:
                journal = journal_file.JournalFile(path)
                journal.append({"run_id": run_id, "unspawned": True})
                if journal.waiting:
                    self._waiting.append(journal)

    def _keeper_died(self) -> bool:
        """The keeper is dead, not reaped yet: its agents may come to this process before it
        hears of the keeper itself."""
        return os.waitid(os.P_PID, self._keeper_pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def _record(self, info: os.waitid_result) -> None:
        """An orphan exited: if it is a run's agent, its exit goes to the run's journal."""
        try:
            fields = processes.stat_fields(info.si_pid)  # a zombie's, while not reaped
        except OSError:
            return
        found = self.find_run(info.si_pid, processes.start_of(fields),
                              int(fields[3]) == info.si_pid)
        if found is None:  # something an agent left behind
            return
        path, run_id = found
        journal = journal_file.JournalFile(path)
        journal.append({"run_id": run_id, "exit": {
            "ended_at": time.time(), "exit_code": exit_code(info), "error": None,
            "note": "recorded by the keeper's reaper: the keeper had died"}})
        if journal.waiting:
            self._waiting.append(journal)

    def _retry(self) -> None:
        for journal in list(self._waiting):
            journal.flush()
            if not journal.waiting:
                self._waiting.remove(journal)
