"""A process as the daemon knows it: its pid and start time, so that a pid reused by another
process is never taken for it."""

from __future__ import annotations

from starforge_daemon.core.models import ProcessIdentity
from starforge_daemon.runtime.local.processes import process_create_time


def identity_of(pid: int) -> ProcessIdentity | None:
    try:
        return ProcessIdentity(pid=pid, create_time=process_create_time(pid))
    except OSError:  # no such process
        return None


def is_alive(process: ProcessIdentity) -> bool:
    """True only for the very process recorded: a reused pid does not count."""
    current = identity_of(process.pid)
    return current is not None and abs(current.create_time - process.create_time) < 0.05


def session_of(agent: ProcessIdentity) -> int | None:
    """The run's session id (its first pid), while that pid is still the run's: a reused pid
    may lead a stranger's session."""
    current = identity_of(agent.pid)
    if current is not None and abs(current.create_time - agent.create_time) >= 0.05:
        return None
    return agent.pid
