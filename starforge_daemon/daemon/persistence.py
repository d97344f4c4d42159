"""Batched saves of what the daemon shows about itself: the slot file and daemon-state.json.

Neither is needed for recovery (the run journals are), so a backlog does not pay two file
replacements per trigger: slots are saved at most every SLOTS_SAVE_INTERVAL, the state every
STATE_SAVE_INTERVAL, and a failed save is tried again after SAVE_RETRY_INTERVAL. A save waits
SAVE_SETTLE after the change that made it due: a run's start is then saved with its pid in one
write, and the save does not take the CPU its agent needs to start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from starforge_daemon.core.events import Problem, Publisher
from starforge_daemon.core.ledger import Ledger
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.history import History
from starforge_daemon.store.journal import RunJournal
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import Archive
from starforge_daemon.store.slots import SlotTable
from starforge_daemon.store.state import DaemonState, StateFile

STATE_SAVE_INTERVAL = 1.0
SLOTS_SAVE_INTERVAL = 0.05
SAVE_RETRY_INTERVAL = 1.0
SAVE_SETTLE = 0.01


@dataclass(frozen=True)
class Stores:
    """The records the engine writes, built by the service and handed to the engine."""

    archive: Archive
    journal: RunJournal
    attempts: Attempts
    history: History
    state_file: StateFile

    @classmethod
    def open(cls, paths: ProjectPaths) -> Stores:
        return cls(Archive(paths), RunJournal(paths), Attempts(paths), History(paths.history_file),
                   StateFile(paths.state_file))


class Persistence:
    """Owns the counters and the slot histories, and knows when each file is due."""

    def __init__(self, slots: SlotTable, state_file: StateFile, ledger: Ledger,
                 events: Publisher) -> None:
        self.slots = slots
        self.state_file = state_file
        self.ledger = ledger
        self.events = events
        self.counters: Counter[str] = Counter()
        self.notify_error: str | None = None
        self._state_dirty = True
        self._next_state_save = 0.0
        self._next_slots_save = 0.0
        self._next_retry = 0.0
        self._dirty_since: float | None = None  # when a save was first seen due, since the last
        self._save_problem: str | None = None  # the failure said last, while it lasts

    def changed(self) -> None:
        """Something the state file shows has changed."""
        self._state_dirty = True

    def count(self, word: str) -> None:
        """One more of ``word`` (``observers/counters.py`` says which events count)."""
        self.counters[word] += 1
        self._state_dirty = True

    def notify_failing(self, error: str | None) -> None:
        """The notifier's last failed delivery while it fails, None once it works
        (``observers/notify.py``); the state file shows it."""
        if error != self.notify_error:
            self.notify_error = error
            self._state_dirty = True

    def due(self) -> list[float]:
        """The moments at which a save is due (for the loop's wait)."""
        moments = []
        settled = 0.0 if self._dirty_since is None else self._dirty_since + SAVE_SETTLE
        if self.slots.dirty(self.ledger):
            moments.append(max(self._next_slots_save, self._next_retry, settled))
        if self._state_dirty:
            moments.append(max(self._next_state_save, self._next_retry, settled))
        return moments

    def save(self, now: float, state: Callable[[float], DaemonState], force: bool = False) -> None:
        """Save what changed and is due; ``force`` saves it now (start and stop). Each file
        is saved on its own: one that cannot be written does not keep the other back, and its
        failure is said once per spell."""
        slots_dirty = self.slots.dirty(self.ledger)
        if not (slots_dirty or self._state_dirty):
            self._dirty_since = None
            return
        if self._dirty_since is None:
            self._dirty_since = now
        if (now < self._next_retry or now < self._dirty_since + SAVE_SETTLE) and not force:
            return
        self._dirty_since = None
        failures: list[str] = []
        if slots_dirty and (force or now >= self._next_slots_save):
            try:
                self.slots.save(self.ledger)
                self._next_slots_save = now + SLOTS_SAVE_INTERVAL
            except OSError as error:
                failures.append(str(error))
        if self._state_dirty and (force or now >= self._next_state_save):
            try:
                self.state_file.save(state(now))
                self._state_dirty = False
                self._next_state_save = now + STATE_SAVE_INTERVAL
            except OSError as error:
                failures.append(str(error))
        if failures:
            self._next_retry = now + SAVE_RETRY_INTERVAL
        problem = "; ".join(failures) or None
        if problem is not None and problem != self._save_problem:
            self.events.publish(Problem(msg="cannot save state; keeping the last good file and "
                                        "trying again", error=problem))
        self._save_problem = problem
