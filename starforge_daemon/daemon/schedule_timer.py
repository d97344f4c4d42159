"""The schedules' timer on the engine's loop: when a schedule is due and its last trigger has
ended, write one trigger file into the trigger folder, where intake reads and checks it like
any other.

Its last trigger counts as pending while that file is queued in ``triggers/`` or in
``running/`` (where a run's trigger stays, retries included, until it is archived): the
files say it, across restarts too. The timer wakes the loop when the next schedule is due,
at each ``PROCESS_MONITOR_INTERVAL`` to see whether the file changed, and as soon as a
trigger leaves for an archive while a schedule waits for one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from starforge_daemon.core.dependency_events import Duplicate, EndedUnrun
from starforge_daemon.core.events import (
    Archived,
    Cancelled,
    Event,
    Problem,
    Publisher,
    Rejected,
    Vanished,
)
from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.schedule_events import (
    ScheduleBlocked,
    ScheduleFailed,
    ScheduleFired,
    ScheduleInvalid,
    SchedulesRead,
)
from starforge_daemon.core.schedules import (
    Blocked,
    Fire,
    Schedule,
    ScheduleError,
    ScheduleState,
    Wait,
    decide,
    fired,
    next_due,
)
from starforge_daemon.daemon.periodic import Periodic, Upkeep
from starforge_daemon.store.atomic import write_atomic
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.schedule_state import (
    load_schedule_states,
    save_schedule_states,
    still_pending,
)
from starforge_daemon.store.schedules_file import read_schedules

if TYPE_CHECKING:
    from starforge_daemon.daemon.engine import Engine

FileSignature = tuple[int, int, int] | str | None  # (inode, size, mtime), an error, or no file


def trigger_name(schedule: str, now: float) -> str:
    """The file a firing writes: the schedule's name and the firing time in nanoseconds."""
    return f"schedule-{schedule}-{round(now * 1e9)}.trigger"


def install_schedules(engine: Engine) -> ScheduleTimer:
    """The schedules' timer among the engine's upkeep, told of the triggers that leave."""
    timer = ScheduleTimer(engine.paths, engine.events, engine.settings.PROCESS_MONITOR_INTERVAL,
                          accepting=lambda: engine.stop_mode is None)
    timer.install(engine.upkeep)
    engine.events.subscribe(timer.observe)
    return timer


class ScheduleTimer:
    def __init__(self, paths: ProjectPaths, events: Publisher, check_every: float,
                 accepting: Callable[[], bool]) -> None:
        self.paths = paths
        self.events = events
        self.check_every = check_every
        self.accepting = accepting  # False once the daemon is stopping
        self.schedules: tuple[Schedule, ...] = ()
        self.states = load_schedule_states(paths.schedules_state)
        self.blocked: set[str] = set()
        self._read: FileSignature = None  # no file: nothing to read
        self._task: Periodic | None = None

    def install(self, upkeep: Upkeep) -> None:
        self._task = upkeep.every(self.check_every, self.tick)

    def observe(self, event: Event) -> None:
        """Subscribed to the engine's events: a trigger left the queue or its run, so a
        schedule waiting for it may fire now, in this turn of the loop."""
        if self.blocked and self._task is not None and isinstance(
                event, Archived | Rejected | Cancelled | Vanished | EndedUnrun | Duplicate):
            self._task.next_at = 0.0

    def tick(self, now: float) -> None:
        changed = self._reload()
        soonest = now + self.check_every
        if self.accepting():
            for schedule in self.schedules:
                try:
                    moved, next_at = self._consider(schedule, now)
                except ScheduleError as error:  # its cron times are all past: it is off
                    self.schedules = tuple(kept for kept in self.schedules if kept is not schedule)
                    self.events.publish(ScheduleInvalid(f"{self.paths.schedules_file} "
                                                        f"[{schedule.name}]: {error}; it is off",
                                                        schedule=schedule.name))
                    continue
                changed = changed or moved
                if next_at is not None:
                    soonest = min(soonest, next_at)
        if changed:
            try:
                save_schedule_states(self.paths.schedules_state, self.states)
            except OSError as error:  # kept in memory; saved with the next change
                self.events.publish(Problem(msg="cannot save the schedules' state",
                                            error=str(error)))
        if self._task is not None:
            self._task.next_at = soonest

    def _consider(self, schedule: Schedule, now: float) -> tuple[bool, float | None]:
        """Fire ``schedule`` if it is due and free; says whether its state changed, and when
        it wants the loop to wake (None: at the next check)."""
        state = self.states.get(schedule.name)
        changed = state is None
        if state is None:
            state = self.states[schedule.name] = ScheduleState(since=now)
        decision = decide(schedule, state, now, still_pending(self.paths, state))
        if isinstance(decision, Wait):
            return changed, decision.until
        if isinstance(decision, Blocked):
            if schedule.name not in self.blocked:
                self.blocked.add(schedule.name)
                self.events.publish(ScheduleBlocked(schedule.name, str(state.trigger)))
            return changed, None
        if not self._fire(schedule, state, decision, now):
            return changed, None
        return True, next_due(schedule, self.states[schedule.name])

    def _fire(self, schedule: Schedule, state: ScheduleState, decision: Fire, now: float) -> bool:
        name = trigger_name(schedule.name, now)
        try:
            write_atomic(self.paths.triggers / name, schedule.trigger.to_json().encode() + b"\n")
        except OSError as error:  # the next check tries again
            self.events.publish(ScheduleFailed(schedule.name, str(error)))
            return False
        self.blocked.discard(schedule.name)
        self.states[schedule.name] = fired(state, now, name)
        self.events.publish(ScheduleFired(schedule.name, schedule.agent, name,
                                          str(iso_utc(decision.due, precise=True))))
        return True

    def _reload(self) -> bool:
        """Read the schedules file again when it changed; says whether the states changed.
        A file that cannot be read keeps the schedules read before; a bad schedule is off."""
        path = self.paths.schedules_file
        try:
            info = os.stat(path)
            signature: FileSignature = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        except OSError as error:
            signature = str(error)
        if signature == self._read:
            return False
        self._read = signature
        try:
            found = read_schedules(path)
        except ScheduleError as error:
            self.events.publish(ScheduleInvalid(f"{error}; keeping the {len(self.schedules)} "
                                                "schedules read before"))
            return False
        for name, problem in found.problems.items():
            self.events.publish(ScheduleInvalid(f"{path} [{name}]: {problem}; it is off",
                                                schedule=name))
        self.schedules = found.schedules
        self.events.publish(SchedulesRead(str(path), len(found.schedules), len(found.problems)))
        gone = [name for name in self.states if name not in found.names]
        for name in gone:
            del self.states[name]
        self.blocked &= {schedule.name for schedule in found.schedules}
        return bool(gone)
