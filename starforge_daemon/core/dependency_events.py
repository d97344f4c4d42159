"""What waiting for other triggers and dedupe keys tell the daemon's observers (``WAIT``,
``DEPENDENCY`` and ``DUPLICATE`` lines in the event log)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Waiting:
    """A trigger waits for others (``after``) before it joins the queue."""

    trigger: str
    id: str
    waiting_for: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndedUnrun:
    """A trigger ended without running because of its dependencies: skipped, failed by one,
    or part of a cycle."""

    trigger: str
    id: str
    outcome: str
    reason: str
    archived: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A trigger's dedupe_key was held by one still waiting or running."""

    trigger: str
    id: str
    original: str
    archived: str


DependencyEvent = Waiting | EndedUnrun | Duplicate
