"""When each run in flight next calls for a decision (a stop or a kill), kept up to date from
the runs the ledger says changed. A turn of the loop then costs the runs that changed, not all
runs in flight: with 1,000 runs asleep, working out every run's moment twice a turn took a third
of the daemon's loop while they exited."""

from __future__ import annotations

import heapq
import itertools
from typing import NamedTuple

from starforge_daemon.core.ledger import Ledger, StopReason
from starforge_daemon.core.scheduler import Decision, Kill, Terminate, Watchdogs, due_moment


class _Due(NamedTuple):
    at: float
    order: int  # unique: entries never compare further
    run_id: str
    reason: StopReason | None  # None: the kill at the end of the grace


class Deadlines:
    """The runs' due moments in a heap. A run that changes gets a new entry; the entry it had
    stays in the heap, no longer current, and is dropped when it comes to the top."""

    def __init__(self, ledger: Ledger, grace: float, dogs: Watchdogs | None) -> None:
        self._ledger = ledger
        self._grace = grace
        self._dogs = dogs  # None: runs read as text, stopped by their timeout alone
        self._current: dict[str, _Due] = {}
        self._heap: list[_Due] = []
        self._order = itertools.count()

    def next(self) -> float | None:
        """The earliest moment at which :meth:`decide` would decide something."""
        self._follow()
        top = self._top()
        return None if top is None else top.at

    def decide(self, now: float) -> list[Decision]:
        """What is due by ``now``, each decided once: the run's next moment comes with the
        change the decision makes to its state."""
        self._follow()
        decisions: list[Decision] = []
        while (top := self._top()) is not None and top.at <= now:
            heapq.heappop(self._heap)
            del self._current[top.run_id]
            decisions.append(Kill(top.run_id) if top.reason is None
                             else Terminate(top.run_id, top.reason))
        return decisions

    def _follow(self) -> None:
        for run_id in self._ledger.take_changed():
            state = self._ledger.get(run_id)
            live = self._ledger.live(run_id) if self._dogs is not None else None
            due = None if state is None else due_moment(state, self._grace, live, self._dogs)
            current = self._current.get(run_id)
            if due is None:
                self._current.pop(run_id, None)
            elif current is None or (current.at, current.reason) != due:
                entry = _Due(due[0], next(self._order), run_id, due[1])
                self._current[run_id] = entry
                heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._current) + 64:  # mostly entries no longer current
            self._heap = sorted(self._current.values())

    def _top(self) -> _Due | None:
        while self._heap and self._current.get(self._heap[0].run_id) is not self._heap[0]:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else None
