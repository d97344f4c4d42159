"""What the two containers of a run (``cgroups``, ``sweep``) share: what a run used, and
signals sent through a pidfd, so that a pid reused meanwhile is never hit. Standard library
only, like all of ``containment``."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

KILL_TIMEOUT = 5.0
ROUND = 0.02  # between tries while killed processes die


@dataclass(frozen=True)
class Usage:
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
