"""Pure decisions about runs in flight: which to stop, which to kill, when to look again.

Kill escalation is data: a run being stopped carries the time its SIGTERM went out, and a
later tick turns that into a SIGKILL once the grace period has passed. Nothing here blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from starforge_daemon.core.models import Outcome, OutcomeKind, ProcessIdentity, Run, RunExit


class StopReason(StrEnum):
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    OPERATOR = "operator"


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


def outcome_of(active: ActiveRun, ended: RunExit | None) -> Outcome:
    """How a run ended, from what the keeper recorded and why the daemon was stopping it.

    A run that failed after its deadline timed out even when the daemon that sent the SIGTERM
    died before seeing the end.
    """
    run = active.run
    if ended is None:
        return Outcome(kind=OutcomeKind.LOST,
                       reason="the run ended while no one recorded its exit status")
    if ended.error is not None or ended.exit_code is None:
        return Outcome(kind=OutcomeKind.FAILED, reason=ended.error or "no exit status")
    code = ended.exit_code
    if active.stop is StopReason.SHUTDOWN:
        return Outcome(kind=OutcomeKind.KILLED, exit_code=code,
                       reason=f"killed by daemon shutdown (exit {code})")
    if active.stop is StopReason.OPERATOR:
        return Outcome(kind=OutcomeKind.KILLED, exit_code=code,
                       reason=f"stopped by the operator (exit {code})")
    if active.stop is StopReason.TIMEOUT or (code != 0 and ended.ended_at >= run.deadline):
        return Outcome(kind=OutcomeKind.TIMED_OUT, exit_code=code,
                       reason=f"timed out after {run.timeout:g}s (exit {code})")
    return Outcome.from_exit_code(code)


@dataclass(frozen=True)
class Backoff:
    """``RETRY_BACKOFF`` doubling after each attempt, capped at ``RETRY_BACKOFF_MAX``."""

    base: float
    cap: float

    def delay(self, attempts_made: int) -> float:
        return min(self.base * 2 ** (attempts_made - 1), self.cap)


def retry_delay(kind: OutcomeKind, attempts_made: int, max_retries: int,
                backoff: Backoff) -> float | None:
    """Seconds until the next attempt, or None when the trigger is done trying."""
    if not kind.retryable or attempts_made > max_retries:
        return None
    return backoff.delay(attempts_made)
