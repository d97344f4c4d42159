"""Recurring triggers: what a schedule is, when it is next due, and whether it fires now.

Pure: the daemon brings the clock, the schedules file, the saved state and whether the
schedule's last trigger is still queued or running. A schedule's next window is counted from
its last firing (or, before the first one, from when the daemon first read it), so however many
windows passed while the daemon was down or the last run went on, it fires once, then waits a
whole interval (or to the next cron time) again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from starforge_daemon.core.durations import parse_duration
from starforge_daemon.core.models import Trigger, iso_utc

MIN_INTERVAL = 1.0  # seconds: a shorter one would keep the daemon's loop busy
MAX_INTERVAL = 366 * 86400.0


class ScheduleError(ValueError):
    """A schedule that cannot work; the message says why, in one line."""


class ScheduleKind(StrEnum):
    EVERY = "every"  # a fixed interval after each firing
    CRON = "cron"  # a cron expression, in UTC or its own time zone


@dataclass(frozen=True, slots=True)
class Timing:
    kind: ScheduleKind
    expression: str  # as written: "10m", "*/5 * * * *"
    interval: float | None = None  # seconds, for EVERY
    zone: tzinfo | None = None  # CRON: the time zone of its times; None: UTC


@dataclass(frozen=True, slots=True)
class Schedule:
    """One table of the schedules file: its name, when, and the trigger it writes."""

    name: str
    timing: Timing
    trigger: Trigger

    @property
    def agent(self) -> str:
        return self.trigger.to_agent


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the daemon remembers of a schedule across restarts (unix seconds)."""

    since: float  # when the daemon first read it
    last_fired: float | None = None
    trigger: str | None = None  # the name of the last trigger file it wrote

    @property
    def anchor(self) -> float:
        """What the next window is counted from."""
        return self.since if self.last_fired is None else self.last_fired


@dataclass(frozen=True, slots=True)
class Fire:
    due: float  # the window it fires for (in the past when one was missed)


@dataclass(frozen=True, slots=True)
class Wait:
    until: float


@dataclass(frozen=True, slots=True)
class Blocked:
    """Due, but its last trigger is still queued or running: it fires once that one ends."""

    due: float


Decision = Fire | Wait | Blocked


def timing(every: object, cron: object, zone: tzinfo | None = None) -> Timing:
    """The timing from a table's ``every`` (``"10m"`` or seconds) or ``cron`` (exactly one),
    the latter in ``zone``; raises :class:`ScheduleError`."""
    if (every is None) == (cron is None):
        raise ScheduleError("needs exactly one of every = \"10m\" or cron = \"*/5 * * * *\"")
    if cron is not None:
        if not isinstance(cron, str):
            raise ScheduleError(f"cron: {cron!r} is not a cron expression like \"*/5 * * * *\"")
        _check_cron(cron.strip())
        return Timing(ScheduleKind.CRON, cron.strip(), zone=zone)
    if zone is not None:
        raise ScheduleError("timezone: goes with cron (an interval is the same in every zone)")
    if isinstance(every, bool) or not isinstance(every, str | int | float):
        raise ScheduleError(f"every: {every!r} is not a duration like \"90s\", \"10m\" or \"1h\"")
    try:
        seconds = float(every) if not isinstance(every, str) else parse_duration(every)
    except ValueError as error:
        raise ScheduleError(f"every: {error}") from None
    if not seconds >= MIN_INTERVAL:
        raise ScheduleError(f"every: {every!r} is shorter than {MIN_INTERVAL:g} second")
    if not seconds <= MAX_INTERVAL:  # infinity included (TOML has it)
        raise ScheduleError(f"every: {every!r} is longer than a year (use cron for rarer work)")
    written = every.strip() if isinstance(every, str) else f"{seconds:g}s"
    return Timing(ScheduleKind.EVERY, written, seconds)


def _check_cron(expression: str) -> None:
    """croniter's own word on the expression, and a time it comes at (``0 0 30 2 *`` never
    does)."""
    from croniter import croniter  # only for schedules that use cron

    if not croniter.is_valid(expression):
        raise ScheduleError(f"cron: {expression!r} is not a cron expression like "
                            "\"*/5 * * * *\" (minute hour day-of-month month day-of-week)")
    try:
        croniter(expression, 0.0).get_next(float)
    except ValueError as error:  # croniter's errors are ValueErrors
        raise ScheduleError(f"cron: {expression!r}: {error}") from None


def next_due(schedule: Schedule, state: ScheduleState) -> float:
    """The next window after the last firing (or after the daemon first read the schedule);
    raises :class:`ScheduleError` for a cron expression whose times are all past."""
    if schedule.timing.interval is not None:
        return state.anchor + schedule.timing.interval
    from croniter import croniter

    start = datetime.fromtimestamp(state.anchor, schedule.timing.zone or UTC)
    try:
        return float(croniter(schedule.timing.expression, start).get_next(datetime).timestamp())
    except ValueError:  # croniter's: no time after the anchor matches (a year gone by)
        raise ScheduleError(f"cron: {schedule.timing.expression!r} names no time after "
                            f"{iso_utc(state.anchor)}") from None


def decide(schedule: Schedule, state: ScheduleState, now: float, pending: bool) -> Decision:
    """Fire when due and nothing from this schedule is still queued or running."""
    due = next_due(schedule, state)
    if now < due:
        return Wait(due)
    return Blocked(due) if pending else Fire(due)


def fired(state: ScheduleState, now: float, trigger: str) -> ScheduleState:
    return replace(state, last_fired=now, trigger=trigger)
