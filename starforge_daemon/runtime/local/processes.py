"""What the two containers of a run (``cgroups``, ``sweep``) share: what a run used, and
signals sent through a pidfd, so that a pid reused meanwhile is never hit. Standard library
only, like all of ``containment``."""

from __future__ import annotations

import errno
import functools
import os
import select
import signal
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

KILL_TIMEOUT = 5.0
ROUND = 0.02  # between tries while killed processes die


class Usage(NamedTuple):
    """What a run consumed. None where unknown; ``note`` says what is missing and why."""

    cpu_seconds: float | None
    peak_memory: int | None  # bytes
    oom_kills: int | None
    approximate: bool
    note: str = ""


def read_bytes(path: str) -> bytes:
    """A whole (small, /proc or cgroupfs) file, without the cost of a Python file object."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=64)
def program_path(name: str) -> str:
    """Where ``posix_spawnp`` would find ``name`` in this process's ``PATH`` (which does not
    change), or ``name`` itself: found once per program, where ``posix_spawnp`` tries an exec
    in each folder of ``PATH`` on every spawn while the spawning process waits."""
    if "/" in name:
        return name
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return name


def spawn_program(argv: list[str], env: Mapping[str, str],
                  launch: Callable[..., int] = os.posix_spawn, **spawn: Any) -> int:
    """``launch`` (``os.posix_spawn``, or one taking the same arguments and more) of ``argv``,
    its program found in ``PATH`` as ``posix_spawnp`` would, but once (``program_path``); a
    program moved since is looked up again."""
    try:
        return launch(_found(argv[0]), argv, env, **spawn)
    except (FileNotFoundError, PermissionError):
        if "/" in argv[0]:
            raise
        program_path.cache_clear()
        return launch(_found(argv[0]), argv, env, **spawn)


def _found(name: str) -> str:
    """``program_path``, or FileNotFoundError: a bare name is never run from the working folder."""
    path = program_path(name)
    if "/" not in path:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return path


def ignored_signals() -> frozenset[int]:
    """The signals this process ignores: the only dispositions a spawned program inherits
    (handlers go back to the default at exec), so the only ones a spawn must reset."""
    return frozenset(number for number in signal.valid_signals()
                     if number not in (signal.SIGKILL, signal.SIGSTOP)
                     and signal.getsignal(number) == signal.SIG_IGN)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[bytes]:
    """``/proc/PID/stat`` from its third field (the state) on."""
    return read_bytes(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()


def start_of(fields: list[bytes]) -> float:
    """A process's start in seconds since boot (``ProcessIdentity.start``), from its
    :func:`stat_fields`."""
    return int(fields[19]) / CLOCK_TICKS


def process_start(pid: int) -> float:
    return start_of(stat_fields(pid))


def zombie_exit(pid: int, start: float) -> int | None:
    """The exit code (``os.waitstatus_to_exitcode``'s form) of the process ``pid`` started at
    ``start`` (seconds since boot), while it is a zombie its parent has not reaped yet; None otherwise. The
    kernel shows a zombie's wait status to its owner (``/proc/PID/stat``, field 52)."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return None
    if fields[0] != b"Z" or abs(start_of(fields) - start) >= 0.05 or len(fields) < 50:
        return None
    return os.waitstatus_to_exitcode(int(fields[49]))


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Block until process ``pid`` is gone (pidfd: no polling), or the timeout passes."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], max(0.0, timeout))
        return bool(readable)
    finally:
        os.close(pidfd)


def pidfd_of(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return None


def send(pidfd: int, signum: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
