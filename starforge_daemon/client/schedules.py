"""``starforge schedules``: each schedule of ``.claude/schedules.toml`` with when it last fired
(from the daemon's ``schedules-state.json``) and when it is next due."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.schedules import Schedule, ScheduleError, ScheduleState, next_due
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.schedule_state import load_schedule_states, still_pending
from starforge_daemon.store.schedules_file import read_schedules


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    kind: str  # every or cron
    expression: str
    timezone: str | None  # cron: the zone of its times; None: UTC
    agent: str
    action: str | None
    last_fired: float | None
    next_due: float  # before the daemon first reads it: as if it read it now
    waiting_for: str | None  # its last trigger, still queued or running

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "expression": self.expression,
                "timezone": self.timezone, "agent": self.agent, "action": self.action,
                "last_fired": iso_utc(self.last_fired), "next_due": iso_utc(self.next_due),
                "waiting_for": self.waiting_for}


@dataclass(frozen=True)
class ScheduleListing:
    rows: list[ScheduleRow]
    invalid: dict[str, str]  # schedule name -> why it is off

    def to_json(self) -> dict[str, Any]:
        return {"schedules": [row.to_json() for row in self.rows], "invalid": self.invalid}


def _row(paths: ProjectPaths, schedule: Schedule, state: ScheduleState) -> ScheduleRow:
    zone = schedule.timing.zone
    return ScheduleRow(schedule.name, schedule.timing.kind.value, schedule.timing.expression,
                       None if zone is None else str(zone), schedule.agent,
                       schedule.trigger.action, state.last_fired, next_due(schedule, state),
                       state.trigger if still_pending(paths, state) else None)


def list_schedules(paths: ProjectPaths, now: float) -> ScheduleListing:
    """Raises :class:`ScheduleError` when the file cannot be read."""
    found = read_schedules(paths.schedules_file)
    states = load_schedule_states(paths.schedules_state) if found.schedules else {}
    rows, invalid = [], dict(found.problems)
    for schedule in found.schedules:
        try:
            rows.append(_row(paths, schedule, states.get(schedule.name) or ScheduleState(now)))
        except ScheduleError as error:  # its cron times are all past
            invalid[schedule.name] = str(error)
    return ScheduleListing(rows, invalid)
