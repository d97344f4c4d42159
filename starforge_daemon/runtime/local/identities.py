"""A process as the daemon knows it: its pid and start time, so that a pid reused by another
process is never taken for it."""

from __future__ import annotations

from typing import Any

from starforge_daemon.core.models import ProcessIdentity
from starforge_daemon.runtime.local.processes import process_start


def identity_of(pid: int) -> ProcessIdentity | None:
    try:
        return ProcessIdentity(pid=pid, start=process_start(pid))
    except OSError:  # no such process
        return None


def reported_agent(message: dict[str, Any]) -> ProcessIdentity:
    """The agent a keeper names (``{"pid", "start"}``). A keeper of an earlier version, which
    outlives the daemon, gives a wall-clock ``create_time`` instead: the start is read from
    ``/proc`` then (that keeper holds the agent unreaped, so its pid is still the agent's)."""
    pid = message["pid"]
    if "start" in message:
        return ProcessIdentity(pid=pid, start=message["start"])
    return ProcessIdentity(pid=pid, start=process_start(pid))


def is_alive(process: ProcessIdentity) -> bool:
    """True only for the very process recorded: a reused pid does not count."""
    current = identity_of(process.pid)
    return current is not None and abs(current.start - process.start) < 0.05


def session_of(agent: ProcessIdentity) -> int | None:
    """The run's session id (its first pid), while that pid is still the run's: a reused pid
    may lead a stranger's session."""
    current = identity_of(agent.pid)
    if current is not None and abs(current.start - agent.start) >= 0.05:
        return None
    return agent.pid
