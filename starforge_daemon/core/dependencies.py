"""Triggers that wait for others (``after``): the failure policy, cycles, unknown ids.

Pure bookkeeping. The daemon says which trigger ids are *live* (waiting here, queued or
running: a trigger that will be retried has not ended) and how each one ended; this answers
whether a trigger may join the queue, must wait, or ends without running (it stays live until
the daemon says it was archived, like any other). An id may be live
more than once (ids are unique among live triggers only by the writers' care): who waits for
it waits until none of them is live, and the last one to end is its outcome.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from starforge_daemon.core.models import OutcomeKind, QueuedTrigger

# Ended ids kept in memory (about 350 bytes each: the id, its Ended record, its archived path,
# the dictionary's entry); older ones are looked up in the run history, one pass per batch.
REMEMBERED = 2_000


@dataclass(frozen=True, slots=True)
class Ended:
    """How a trigger ended, as far as the triggers after it care."""

    outcome: str
    reason: str
    archived_as: str | None = None  # its result file is beside it

    @property
    def succeeded(self) -> bool:
        return self.outcome == OutcomeKind.SUCCEEDED.value


@dataclass(frozen=True, slots=True)
class Release:
    """It may join the queue."""

    entry: QueuedTrigger


@dataclass(frozen=True, slots=True)
class Wait:
    waiting_for: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refuse:
    """It ends without running: skipped or failed by a dependency, or invalid (a cycle)."""

    entry: QueuedTrigger
    kind: OutcomeKind
    reason: str


Decision = Release | Refuse


@dataclass(slots=True)
class _Waiter:
    entry: QueuedTrigger
    pending: set[str] = field(default_factory=set)


class Dependencies:
    def __init__(self, wait_limit: float) -> None:
        self.wait_limit = wait_limit  # how long an id nobody has seen yet is awaited
        self._live: dict[str, int] = {}
        self._ended: OrderedDict[str, Ended] = OrderedDict()
        self._waiters: dict[str, _Waiter] = {}  # by trigger name
        self._dependents: dict[str, set[str]] = {}  # upstream id -> names waiting for it
        self._waiting_ids: dict[str, set[str]] = {}  # id -> names of waiters with that id
        self._deadlines: list[tuple[float, str]] = []

    def __contains__(self, name: object) -> bool:
        return name in self._waiters

    def __len__(self) -> int:
        return len(self._waiters)

    def is_live(self, trigger_id: str) -> bool:
        return trigger_id in self._live

    def live(self, trigger_id: str) -> None:
        """A trigger with this id is queued or running (one that did not arrive here)."""
        self._live[trigger_id] = self._live.get(trigger_id, 0) + 1

    def unknown(self, entry: QueuedTrigger) -> list[str]:
        """Its upstream ids that are neither live nor remembered as ended."""
        return [upstream for upstream in entry.after
                if upstream not in self._live and upstream not in self._ended]

    def ended_as(self, trigger_id: str) -> Ended | None:
        """How the last trigger with this id ended, if it is remembered."""
        return self._ended.get(trigger_id)

    def remember(self, trigger_id: str, ended: Ended) -> None:
        self._ended[trigger_id] = ended
        self._ended.move_to_end(trigger_id)
        if len(self._ended) > REMEMBERED:
            self._ended.popitem(last=False)

    def arrive(self, entry: QueuedTrigger) -> Release | Wait | Refuse:
        """A new trigger: it is live from now on, unless it is refused."""
        self.live(entry.id)
        if not entry.after:
            return Release(entry)
        cycle = self._cycle(entry)
        if cycle:
            return Refuse(entry, OutcomeKind.INVALID,
                          "after: dependency cycle " + " -> ".join(cycle))
        pending = {upstream for upstream in entry.after
                   if upstream in self._live or upstream not in self._ended}
        if not pending:
            return self._decide(entry)
        self._waiters[entry.name] = _Waiter(entry, pending)
        self._waiting_ids.setdefault(entry.id, set()).add(entry.name)
        for upstream in pending:
            self._dependents.setdefault(upstream, set()).add(entry.name)
        heapq.heappush(self._deadlines, (entry.key[1] / 1e9 + self.wait_limit, entry.name))
        return Wait(tuple(upstream for upstream in entry.after if upstream in pending))

    def ended(self, trigger_id: str, ended: Ended) -> list[Decision]:
        """A trigger with this id was archived: what becomes of those waiting for it."""
        self._end_live(trigger_id)
        self.remember(trigger_id, ended)
        if trigger_id in self._live:
            return []
        decisions = []
        for name in sorted(self._dependents.pop(trigger_id, ())):
            waiter = self._waiters.get(name)
            if waiter is None:
                continue
            waiter.pending.discard(trigger_id)
            if not waiter.pending:
                self._forget(waiter)
                decisions.append(self._decide(waiter.entry))
        return decisions

    def expired(self, now: float) -> list[Refuse]:
        """Waiters whose unknown upstreams did not come within ``wait_limit`` of their arrival."""
        refused = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, name = heapq.heappop(self._deadlines)
            waiter = self._waiters.get(name)
            missing = sorted(upstream for upstream in waiter.pending
                             if upstream not in self._live) if waiter else []
            if waiter is None or not missing:
                continue
            self._forget(waiter)
            refused.append(Refuse(waiter.entry, OutcomeKind.FAILED,
                                  f"dependency {missing[0]} never came: no trigger with that id "
                                  f"within DEPENDENCY_WAIT ({self.wait_limit:g}s)"))
        return refused

    def next_due(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def withdraw(self, name: str) -> QueuedTrigger | None:
        """Take a waiting trigger out (cancelled); it is still live until it is archived."""
        waiter = self._waiters.get(name)
        if waiter is None:
            return None
        self._forget(waiter)
        return waiter.entry

    def waiting_for(self, name: str) -> tuple[str, ...]:
        waiter = self._waiters.get(name)
        return tuple(sorted(waiter.pending)) if waiter else ()

    def _decide(self, entry: QueuedTrigger) -> Decision:
        """Every upstream has ended: run it, or end it by its policy if one did not succeed."""
        if entry.on_upstream_failure != "run":
            for upstream in entry.after:
                ended = self._ended.get(upstream)
                if ended is not None and not ended.succeeded:
                    reason = f"dependency {upstream} {ended.outcome}: {ended.reason}"
                    kind = OutcomeKind.SKIPPED if entry.on_upstream_failure == "skip" \
                        else OutcomeKind.FAILED
                    return Refuse(entry, kind, reason)
        return Release(entry)

    def _cycle(self, entry: QueuedTrigger) -> list[str]:
        """The ids of a cycle through waiting triggers that ``entry`` would close, or []."""
        if entry.id not in self._dependents:
            return []  # nobody waits for it: it closes no cycle
        trail: dict[str, str | None] = {upstream: None for upstream in entry.after}
        todo = list(entry.after)
        while todo:
            upstream = todo.pop()
            if upstream == entry.id:
                path = [upstream]
                while (step := trail[path[-1]]) is not None:
                    path.append(step)
                return [entry.id, *reversed(path)]
            for name in self._waiting_ids.get(upstream, ()):
                for further in self._waiters[name].pending:
                    if further not in trail:
                        trail[further] = upstream
                        todo.append(further)
        return []

    def _forget(self, waiter: _Waiter) -> None:
        name = waiter.entry.name
        del self._waiters[name]
        names = self._waiting_ids.get(waiter.entry.id)
        if names is not None:
            names.discard(name)
            if not names:
                del self._waiting_ids[waiter.entry.id]
        for upstream in waiter.pending:
            dependents = self._dependents.get(upstream)
            if dependents is not None:
                dependents.discard(name)
                if not dependents:
                    del self._dependents[upstream]

    def _end_live(self, trigger_id: str) -> None:
        count = self._live.get(trigger_id, 0)
        if count > 1:
            self._live[trigger_id] = count - 1
        else:
            self._live.pop(trigger_id, None)
