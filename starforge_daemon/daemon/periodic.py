"""Upkeep that runs on the loop's thread every so often (log upkeep, watchdog pings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starforge_daemon.core.events import Problem, Publisher


@dataclass
class Periodic:
    """``next_at`` is set before ``action`` runs, so the action may move it (sooner or later)."""

    interval: float
    action: Callable[[float], None]
    next_at: float = 0.0


class Upkeep:
    def __init__(self, events: Publisher) -> None:
        self.events = events
        self.tasks: list[Periodic] = []

    def every(self, interval: float, action: Callable[[float], None]) -> Periodic:
        """Run ``action(now)`` every ``interval`` seconds, first at start, never on dispatch."""
        task = Periodic(interval, action)
        self.tasks.append(task)
        return task

    def due(self) -> list[float]:
        return [task.next_at for task in self.tasks]

    def run(self, now: float) -> None:
        for task in self.tasks:
            if now >= task.next_at:
                task.next_at = now + task.interval
                try:
                    task.action(now)
                except Exception as error:  # upkeep must never stop the daemon
                    self.events.publish(Problem(msg="upkeep failed", task=task.action.__name__,
                                                error=repr(error)))
