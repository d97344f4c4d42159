"""The fallback container: a run's processes found in ``/proc`` by the
``STARFORGE_RUN_ID=<run-id>`` every agent inherits, and by the session of its first process.
A process that clears its environment escapes it; CPU and memory figures are sampled.
Standard library only (see ``containment``)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if __package__:
    from . import processes
else:  # beside keeper.py, run as a script (python3 -I -S): plain sibling modules
    import processes

if TYPE_CHECKING:
    from resource import struct_rusage

RUN_ID_ENV = "STARFORGE_RUN_ID"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        return processes.read_bytes(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _is_member(pid: int, needle: bytes, uid: int, session: int | None) -> bool:
    try:
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return False
        fields = _proc_stat(pid)
        if fields is None or fields[0] == b"Z":
            return False
        if session is not None and int(fields[3]) == session:
            return True
        return needle in processes.read_bytes(f"/proc/{pid}/environ").split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def sweep_members(run_id: str, session: int | None = None) -> list[int]:
    """This user's live processes carrying ``STARFORGE_RUN_ID=<run_id>`` or, given the run's
    first pid, in its session (a session id stays reserved while any process uses it)."""
    needle = f"{RUN_ID_ENV}={run_id}".encode()
    uid, me = os.geteuid(), os.getpid()
    return [pid for pid in (int(name) for name in os.listdir("/proc") if name.isdigit())
            if pid != me and _is_member(pid, needle, uid, session)]


def sweep_signal(run_id: str, signum: int, session: int | None = None) -> int:
    """Send ``signum`` once to each process of the run; how many got it."""
    needle = f"{RUN_ID_ENV}={run_id}".encode()
    uid = os.geteuid()
    sent = 0
    for pid in sweep_members(run_id, session):
        pidfd = processes.pidfd_of(pid)
        if pidfd is None:
            continue
        try:  # checked again through the pidfd: the pid may have been reused meanwhile
            if _is_member(pid, needle, uid, session) and processes.send(pidfd, signum):
                sent += 1
        finally:
            os.close(pidfd)
    return sent


def sweep_kill(run_id: str, session: int | None = None,
               timeout: float = processes.KILL_TIMEOUT) -> tuple[int, ...]:
    """SIGKILL the run's processes, again and again while any is left (they may fork while
    being killed) until ``timeout``; the ones left then."""
    deadline = time.monotonic() + timeout
    while True:
        if not sweep_signal(run_id, signal.SIGKILL, session) and not sweep_members(run_id, session):
            return ()
        if time.monotonic() > deadline:
            return tuple(sweep_members(run_id, session))
        time.sleep(processes.ROUND)


def _peak_rss(pid: int) -> int | None:
    try:
        for line in processes.read_bytes(f"/proc/{pid}/status").splitlines():
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def sweep_usage(pids: Sequence[int], rusage: struct_rusage | None = None) -> processes.Usage:
    """Approximate usage without a cgroup: the run's first process and the children it waited
    for (``rusage`` from ``os.wait4``) plus the processes ``pids`` as they are now. What other
    processes of the run spent before they exited is missed; ``ru_maxrss`` includes the
    spawner's resident size at exec (posix_spawn shares its memory until then)."""
    cpu = 0.0 if rusage is None else rusage.ru_utime + rusage.ru_stime
    peak = None if rusage is None else rusage.ru_maxrss * 1024
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            cpu += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        rss = _peak_rss(pid)
        if rss is not None:
            peak = rss if peak is None else max(peak, rss)
    return processes.Usage(cpu, peak, None, approximate=True,
                 note="sampled: first process and its reaped children, plus processes left at the end")
