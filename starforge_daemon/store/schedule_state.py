"""``.claude/daemon/schedules-state.json``: each schedule's last firing, kept by the daemon::

    {"board-check": {"since": "2026-12-03T10:00:00.000Z", "last_fired": "2026-12-03T10:05:00.012Z",
                     "trigger": "schedule-board-check-1764756300012000000.trigger"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import iso_utc, parse_iso_utc
from starforge_daemon.core.schedules import ScheduleState
from starforge_daemon.store.atomic import read_json_object, write_json_atomic
from starforge_daemon.store.paths import ProjectPaths


def _state(entry: Any) -> ScheduleState | None:
    if not isinstance(entry, dict):
        return None
    try:
        since = parse_iso_utc(entry.get("since"))
        last_fired = parse_iso_utc(entry.get("last_fired"))
    except (TypeError, ValueError, AttributeError):
        return None
    if since is None:
        return None
    trigger = entry.get("trigger")
    return ScheduleState(since, last_fired, trigger if isinstance(trigger, str) else None)


def load_schedule_states(path: Path) -> dict[str, ScheduleState]:
    """What can be read of the file; a schedule whose entry is missing or damaged starts over
    (its first window one interval after now)."""
    states = {name: _state(entry) for name, entry in read_json_object(path).items()}
    return {name: state for name, state in states.items() if state is not None}


def save_schedule_states(path: Path, states: Mapping[str, ScheduleState]) -> None:
    write_json_atomic(path, {
        name: {"since": iso_utc(state.since, precise=True),
               "last_fired": iso_utc(state.last_fired, precise=True), "trigger": state.trigger}
        for name, state in sorted(states.items())})


def still_pending(paths: ProjectPaths, state: ScheduleState) -> bool:
    """The schedule's last trigger is queued (``triggers/``) or its run is in flight
    (``running/``, where it stays until archived, retries included)."""
    name = state.trigger
    return name is not None and ((paths.triggers / name).exists()
                                 or (paths.running / name).exists())
