"""Pending triggers in order, with "next runnable" skipping agents that are busy.

Each agent has its own heap; a second heap holds the head of every agent that may run now.
Adding, taking and releasing cost O(log n): nothing rescans or re-sorts the whole queue.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from .intake import QueuedTrigger


class TriggerQueue:
    def __init__(self) -> None:
        self._by_agent: dict[str, list[tuple[tuple[int, str], QueuedTrigger]]] = {}
        self._ready: list[tuple[tuple[int, str], str]] = []
        self._held: set[str] = set()
        self._names: dict[str, QueuedTrigger] = {}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def add(self, entry: QueuedTrigger) -> None:
        if entry.name in self._names:
            return
        self._names[entry.name] = entry
        heap = self._by_agent.setdefault(entry.agent, [])
        heapq.heappush(heap, (entry.key, entry))
        if entry.agent not in self._held and heap[0][1] is entry:
            heapq.heappush(self._ready, (entry.key, entry.agent))

    def take_next(self) -> QueuedTrigger | None:
        """The oldest trigger whose agent is free; that agent is held until :meth:`release`."""
        while self._ready:
            key, agent = heapq.heappop(self._ready)
            heap = self._by_agent.get(agent)
            if agent in self._held or not heap or heap[0][0] != key:
                continue  # stale: the agent got busy or its head changed since this was pushed
            _, entry = heapq.heappop(heap)
            if not heap:
                del self._by_agent[agent]
            del self._names[entry.name]
            self._held.add(agent)
            return entry
        return None

    def hold(self, agent: str) -> None:
        """Keep ``agent``'s triggers waiting (its slot is busy with a run from elsewhere)."""
        self._held.add(agent)

    def release(self, agent: str) -> None:
        self._held.discard(agent)
        heap = self._by_agent.get(agent)
        if heap:
            heapq.heappush(self._ready, (heap[0][0], agent))

    def remove(self, name: str) -> QueuedTrigger | None:
        """Forget a trigger (its file vanished); O(k) in that agent's queue only."""
        entry = self._names.pop(name, None)
        if entry is None:
            return None
        heap = self._by_agent[entry.agent]
        heap.remove((entry.key, entry))
        heapq.heapify(heap)
        if not heap:
            del self._by_agent[entry.agent]
        elif entry.agent not in self._held:
            heapq.heappush(self._ready, (heap[0][0], entry.agent))
        return entry

    def is_held(self, agent: str) -> bool:
        return agent in self._held

    def in_order(self) -> Iterator[QueuedTrigger]:
        """Every pending trigger, oldest first (for listings, not for dispatch)."""
        return iter(sorted(self._names.values(), key=lambda entry: entry.key))
