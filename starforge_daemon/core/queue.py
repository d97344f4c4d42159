"""Pending triggers in order, with "next runnable" skipping agents that are busy or paused.

A trigger's *target* is an agent name or a pool name. Each target has its own heap, ordered
by (higher priority first, older first, name); a second heap holds the heads of targets that
may be runnable. Adding, taking and releasing cost O(log n): nothing rescans or re-sorts the
whole queue. A head that may not run yet (its retry backoff) waits in a third heap by time.

Who is busy is not the queue's to know: it asks ``is_busy`` (the ledger of runs in flight).
The agent :meth:`take_next` returns must count as busy before the next call, and
:meth:`offer` is called when an agent may have become free.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from starforge_daemon.core.models import QueuedTrigger, TriggerKey


class TriggerQueue:
    def __init__(self, pools: Mapping[str, tuple[str, ...]] | None = None,
                 is_busy: Callable[[str], bool] = lambda _agent: False) -> None:
        self._is_busy = is_busy
        self._pools = dict(pools or {})
        self._pools_of: dict[str, list[str]] = {}
        for pool, members in self._pools.items():
            for member in members:
                self._pools_of.setdefault(member, []).append(pool)
        self._turn: dict[str, int] = {}
        self._by_target: dict[str, list[QueuedTrigger]] = {}  # heaps, by key
        self._ready: list[tuple[TriggerKey, str]] = []
        self._waiting: list[tuple[float, TriggerKey, str]] = []
        self._paused: set[str] = set()
        self._all_paused = False
        self._names: dict[str, QueuedTrigger] = {}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[QueuedTrigger]:
        return iter(list(self._names.values()))

    def add(self, entry: QueuedTrigger) -> None:
        if entry.name in self._names:
            return
        self._names[entry.name] = entry
        heap = self._by_target.setdefault(entry.agent, [])
        heapq.heappush(heap, entry)
        if heap[0] is entry:
            heapq.heappush(self._ready, (entry.key, entry.agent))

    def take_next(self, now: float, freeing: str | None = None
                  ) -> tuple[QueuedTrigger, str] | None:
        """The first trigger that may run now and the agent to run it; ``freeing``, an agent
        whose run is ending, counts as free (for a run to start behind that one)."""
        if self._all_paused:
            return None
        while self._waiting and self._waiting[0][0] <= now:
            _, key, target = heapq.heappop(self._waiting)
            heapq.heappush(self._ready, (key, target))
        while self._ready:
            key, target = heapq.heappop(self._ready)
            heap = self._by_target.get(target)
            if not heap or heap[0].key != key:
                continue  # stale: its head changed since this was pushed
            entry = heap[0]
            if entry.not_before > now:
                heapq.heappush(self._waiting, (entry.not_before, key, target))
                continue
            agent = self._agent_for(target, freeing)
            if agent is None:
                continue  # pushed again when an agent of it is released or resumed
            heapq.heappop(heap)
            if not heap:
                del self._by_target[target]
            del self._names[entry.name]
            if target in self._pools:
                members = self._pools[target]
                self._turn[target] = (members.index(agent) + 1) % len(members)
                if heap:  # another member may take the next one right away
                    heapq.heappush(self._ready, (heap[0].key, target))
            return entry, agent
        return None

    def _agent_for(self, target: str, freeing: str | None) -> str | None:
        """Who would run ``target`` now: itself, or a pool's next idle member in turn."""
        if target in self._paused:
            return None
        members = self._pools.get(target)
        if members is None:
            return None if self._is_busy(target) and target != freeing else target
        start = self._turn.get(target, 0)
        for offset in range(len(members)):
            member = members[(start + offset) % len(members)]
            if (not self._is_busy(member) or member == freeing) and member not in self._paused:
                return member
        return None

    def may_start(self, entry: QueuedTrigger, agent: str, now: float) -> bool:
        """Whether ``entry``, taken out for ``agent`` already, would still be the next to run:
        no pause holds it back and no trigger waiting now comes before it."""
        if self._all_paused or entry.agent in self._paused or agent in self._paused:
            return False
        return not any(heap[0].key < entry.key and heap[0].not_before <= now
                       and target not in self._paused for target, heap in self._by_target.items())

    def waiting_by_target(self) -> dict[str, int]:
        """How many triggers wait for each target (agent or pool name); O(targets)."""
        return {target: len(heap) for target, heap in self._by_target.items()}

    def next_due(self) -> float | None:
        """When the earliest backing-off trigger may run."""
        return self._waiting[0][0] if self._waiting else None

    def offer(self, agent: str) -> None:
        """``agent`` may be free now: push the heads it may unblock, its own and its pools'."""
        for target in (agent, *self._pools_of.get(agent, ())):
            heap = self._by_target.get(target)
            if heap:
                heapq.heappush(self._ready, (heap[0].key, target))

    def pause(self, target: str | None) -> None:
        """Hold ``target``'s triggers back, or everyone's when ``target`` is None."""
        if target is None:
            self._all_paused = True
        else:
            self._paused.add(target)

    def resume(self, target: str | None) -> None:
        if target is None:
            self._all_paused = False
        else:
            self._paused.discard(target)
            self.offer(target)

    @property
    def pauses(self) -> dict[str, Any]:
        """What is paused, as ``paused.json`` keeps it."""
        return {"all": self._all_paused, "agents": sorted(self._paused)}

    def remove(self, name: str) -> QueuedTrigger | None:
        """Take a trigger out (cancelled, or its file vanished); O(k) in its target's queue."""
        entry = self._names.pop(name, None)
        if entry is None:
            return None
        heap = self._by_target[entry.agent]
        heap.remove(entry)
        heapq.heapify(heap)
        if heap:
            heapq.heappush(self._ready, (heap[0].key, entry.agent))
        else:
            del self._by_target[entry.agent]
        return entry
