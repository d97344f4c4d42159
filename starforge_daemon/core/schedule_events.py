"""What the schedules tell the daemon's observers (``SCHEDULE`` lines in the event log)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SchedulesRead:
    """The schedules file was read (at start, or after it changed)."""

    file: str
    schedules: int
    invalid: int


@dataclass(frozen=True, slots=True)
class ScheduleInvalid:
    """The schedules file, or one schedule in it, cannot work; ``msg`` says why."""

    msg: str
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleFired:
    schedule: str
    agent: str
    trigger: str
    due: str  # the window it fires for, ISO-8601 UTC: earlier than now after a missed one


@dataclass(frozen=True, slots=True)
class ScheduleBlocked:
    """Due while its last trigger is still queued or running: it fires once that one ends."""

    schedule: str
    waiting_for: str  # that trigger


@dataclass(frozen=True, slots=True)
class ScheduleFailed:
    """Its trigger could not be written; tried again at the next check."""

    schedule: str
    error: str


ScheduleEvent = SchedulesRead | ScheduleInvalid | ScheduleFired | ScheduleBlocked | ScheduleFailed
