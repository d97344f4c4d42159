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
