"""``.claude/schedules.toml``: recurring triggers, one table each, named by the table::

    [board-check]
    agent = "orchestrator"
    action = "check_board"
    every = "1m"

Each table is checked on its own, against the daemon's own trigger rules, so one bad schedule
is one line of problem and the others keep working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import AGENT_NAME_RULE, is_agent_name
from starforge_daemon.core.schedules import Schedule, ScheduleError, timing
from starforge_daemon.intake.validate import InvalidTrigger, trigger_from_dict

TIMING_KEYS = ("every", "cron", "timezone")
TRIGGER_KEYS = ("from_agent", "action", "message", "trace_id", "ticket", "context", "priority",
                "max_retries", "timeout")
KEYS = ("agent", *TIMING_KEYS, *TRIGGER_KEYS)


@dataclass(frozen=True)
class SchedulesFile:
    """The schedules that work, a line for each that does not, and every table's name."""

    schedules: tuple[Schedule, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)  # schedule name -> why it is off
    names: frozenset[str] = frozenset()


def read_schedules(path: Path) -> SchedulesFile:
    """The file's schedules; none when there is no file. Raises :class:`ScheduleError` when
    the file as a whole cannot be read (not TOML, not readable)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SchedulesFile()
    except OSError as error:
        raise ScheduleError(f"cannot read {path}: {error.strerror or error}") from None
    import tomllib  # only in projects that have schedules

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScheduleError(f"cannot read {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ScheduleError(f"cannot read {path}: not valid TOML: {error}") from None
    schedules, problems = [], {}
    for name, table in document.items():
        try:
            schedules.append(schedule_from_table(name, table))
        except ScheduleError as error:
            problems[name] = str(error)
    return SchedulesFile(tuple(schedules), problems, frozenset(document))


def schedule_from_table(name: str, table: Any) -> Schedule:
    """One table as a schedule; raises :class:`ScheduleError` with the first reason."""
    if not is_agent_name(name):
        raise ScheduleError(f"the schedule's name must be {AGENT_NAME_RULE}")
    if not isinstance(table, dict):
        raise ScheduleError(f"must be a table ([{name}]) with agent and every or cron")
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        raise ScheduleError(f"unknown key {unknown[0]} (a schedule takes {', '.join(KEYS)})")
    agent = table.get("agent")
    if agent is None:
        raise ScheduleError("agent: required (the agent whose trigger it writes)")
    if not is_agent_name(agent):
        raise ScheduleError(f"agent: must be {AGENT_NAME_RULE} (got {agent!r})")
    when = timing(table.get("every"), table.get("cron"), _zone(table.get("timezone")))
    document = {"to_agent": agent, **{key: table[key] for key in TRIGGER_KEYS if key in table},
                "schedule": name, "dedupe_key": f"schedule:{name}"}
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError):
        raise ScheduleError("holds a value a JSON trigger cannot carry (a TOML date or time, "
                            "inf or nan): write it as a string") from None
    try:
        trigger = trigger_from_dict(document)
    except InvalidTrigger as error:
        raise ScheduleError(str(error)) from None
    return Schedule(name, when, trigger)


def _zone(name: object) -> tzinfo | None:
    """The IANA time zone ``name`` names (from the system's zone files)."""
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only for schedules that name one

    try:
        if isinstance(name, str):
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise ScheduleError(f"timezone: {name!r} is not a time zone name like \"Europe/Paris\"")
