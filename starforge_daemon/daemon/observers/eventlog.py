"""The first observer: each event as one ``daemon.log`` line, the way the recipes grep it
(``grep "SPAWNED\\|FINISH"``, ``MODE``, ``QUEUE``, ``RECOVERY``, ``TIMEOUT``, ``SHUTDOWN``...)."""

from __future__ import annotations

import dataclasses
import functools
from enum import StrEnum
from typing import Any

from starforge_daemon.core import dependency_events as de
from starforge_daemon.core import events as ev
from starforge_daemon.core import schedule_events as se
from starforge_daemon.core.models import OutcomeKind
from starforge_daemon.daemon.logfile import EventLog


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# Events whose line is their word, their level, an optional fixed message and their fields.
_PLAIN: dict[type, tuple[Level, str, str | None]] = {
    ev.DaemonStarted: (Level.INFO, "START", None),
    ev.Mode: (Level.INFO, "MODE", None),
    ev.Contained: (Level.INFO, "MODE", None),
    ev.LimitUnavailable: (Level.WARNING, "MODE", None),
    ev.Ready: (Level.INFO, "READY", None),
    ev.StateDamaged: (Level.ERROR, "RECOVERY", None),
    ev.RecoveryNote: (Level.WARNING, "RECOVERY", None),
    ev.Requeued: (Level.WARNING, "RECOVERY", "trigger was claimed but never started; queued again"),
    ev.MayHaveRun: (Level.ERROR, "RECOVERY", "cannot tell whether its run started; archived "
                    "to failed/ instead of running it again (starforge retry runs it)"),
    ev.Adopted: (Level.WARNING, "RECOVERY", "adopted a run that is still going"),
    ev.Recovered: (Level.WARNING, "RECOVERY", "finishing a run that ended while no daemon ran"),
    ev.Queued: (Level.INFO, "QUEUE", None),
    ev.EventsLost: (Level.WARNING, "QUEUE", "the kernel's queue of trigger-folder events "
                    "overflowed; scanning the folder instead"),
    ev.Vanished: (Level.INFO, "QUEUE", "trigger vanished before it could run"),
    ev.Rejected: (Level.ERROR, "INVALID", None),
    ev.HoldLifted: (Level.INFO, "HOLD", "nothing holds new runs any more; starting them"),
    ev.Spawned: (Level.INFO, "SPAWNED", None),
    ev.Watched: (Level.WARNING, "WATCHDOG", None),
    ev.KillEscalated: (Level.WARNING, "TIMEOUT",
                       "still running after the grace period; sending SIGKILL"),
    ev.WorkspaceReleased: (Level.INFO, "WORKTREE", None),
    ev.Retried: (Level.WARNING, "RETRY", None),
    ev.Paused: (Level.INFO, "PAUSE", "no new runs; running ones carry on"),
    ev.Resumed: (Level.INFO, "RESUME", None),
    ev.StopRequested: (Level.WARNING, "STOP", "stopped by the operator"),
    ev.Cancelled: (Level.WARNING, "CANCEL", None),
    ev.Stopped: (Level.INFO, "SHUTDOWN", "daemon stopped"),
    ev.Crashed: (Level.CRITICAL, "CRITICAL", "daemon crashed"),
    ev.Problem: (Level.ERROR, "ERROR", None),
    ev.StillRunning: (Level.INFO, "PROGRESS", None),
    ev.Drained: (Level.INFO, "QUEUE", "queue drained: nothing queued or running"),
    ev.NotifyFailed: (Level.ERROR, "NOTIFY", "cannot notify; later messages try again"),
    ev.NotifyWorks: (Level.INFO, "NOTIFY", "notifying again"),
    de.Waiting: (Level.INFO, "WAIT", "waits for other triggers to end"),
    de.EndedUnrun: (Level.WARNING, "DEPENDENCY", None),
    de.Duplicate: (Level.WARNING, "DUPLICATE", "its dedupe_key is held by a trigger still "
                   "waiting or running"),
    se.SchedulesRead: (Level.INFO, "SCHEDULE", "read the schedules file"),
    se.ScheduleInvalid: (Level.ERROR, "SCHEDULE", None),
    se.ScheduleFired: (Level.INFO, "SCHEDULE", "due; trigger written"),
    se.ScheduleBlocked: (Level.INFO, "SCHEDULE", "due, but its last trigger is still queued or "
                         "running; fires once that one ends"),
    se.ScheduleFailed: (Level.ERROR, "SCHEDULE", "cannot write its trigger; trying again at the "
                        "next check"),
}


def _fields(event: ev.Event, *leave_out: str) -> dict[str, Any]:
    return {name: getattr(event, name) for name in _field_names(type(event), leave_out)}


@functools.cache
def _field_names(kind: type, leave_out: tuple[str, ...]) -> tuple[str, ...]:
    """An event type's fields, found once: every trigger's lines ask for them."""
    return tuple(field.name for field in dataclasses.fields(kind) if field.name not in leave_out)


def log_line(event: ev.Event) -> tuple[Level, str, dict[str, Any]]:
    """The level, the event word and the keys of the line that tells ``event``."""
    match event:
        case ev.Finished():
            if event.start_failed:
                level = Level.ERROR
            elif event.outcome == OutcomeKind.SUCCEEDED.value:
                level = Level.INFO
            else:
                level = Level.WARNING
            word = "TIMEOUT" if event.outcome == OutcomeKind.TIMED_OUT.value else "FINISH"
            return level, word, _fields(event, "start_failed", "retry_at", "dead_letter")
        case ev.Held():
            return Level.WARNING, "HOLD", {"msg": f"not starting new runs: {event.reason}",
                                           "queued": event.queued}
        case ev.TimedOut():
            return Level.WARNING, "TIMEOUT", {
                "agent": event.agent, "run": event.run,
                "msg": f"past AGENT_TIMEOUT={event.timeout:g}s; sending {event.stop_signal}"}
        case ev.ShuttingDown():
            return Level.INFO, "SHUTDOWN", {
                **_fields(event, "handoff"),
                "msg": "leaving agents running for the next daemon" if event.handoff
                else "stopping agents"}
    level, word, message = _PLAIN[type(event)]
    fields = _fields(event)
    if message:
        fields["msg"] = message
    return level, word, fields


class EventLogObserver:
    """Writes each event through ``log`` (an :class:`EventLog`, ``daemon/logfile.py``)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Archived):  # its FINISH line says it; a backlog pays per line
            return
        level, word, keys = log_line(event)
        self._log.write(level, word, keys)
