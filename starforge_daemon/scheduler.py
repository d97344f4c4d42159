"""Pure decisions about runs in flight: which to stop, which to kill, when to look again.

Kill escalation is data: a run being stopped carries the time its SIGTERM went out, and a
later tick turns that into a SIGKILL once the grace period has passed. Nothing here blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .models import ProcessIdentity, Run


class StopReason(StrEnum):
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


@dataclass
class ActiveRun:
    """A run in flight as the engine sees it."""

    run: Run
    agent: ProcessIdentity | None = None
    stop: StopReason | None = None
    term_sent_at: float | None = None
    kill_sent: bool = False


@dataclass(frozen=True)
class Terminate:
    run_id: str
    reason: StopReason


@dataclass(frozen=True)
class Kill:
    run_id: str


Decision = Terminate | Kill


def enforce(runs: Iterable[ActiveRun], now: float, grace: float) -> list[Decision]:
    decisions: list[Decision] = []
    for active in runs:
        if active.term_sent_at is None:
            if now >= active.run.deadline:
                decisions.append(Terminate(active.run.run_id, StopReason.TIMEOUT))
        elif not active.kill_sent and now >= active.term_sent_at + grace:
            decisions.append(Kill(active.run.run_id))
    return decisions


def next_deadline(runs: Iterable[ActiveRun], grace: float) -> float | None:
    """The earliest moment at which :func:`enforce` would decide something new."""
    moments = [
        active.run.deadline if active.term_sent_at is None else active.term_sent_at + grace
        for active in runs
        if not active.kill_sent
    ]
    return min(moments, default=None)


def free_capacity(limit: int, running: int, accepting: bool) -> int:
    return max(0, limit - running) if accepting else 0
