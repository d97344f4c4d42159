"""Pure decisions about runs in flight: which to stop, which to kill, when to look again, and
what becomes of a trigger whose run ended (requeue it for another attempt, or archive it).

Kill escalation is data: a run being stopped carries the time its SIGTERM went out, and a
later tick turns that into a SIGKILL once the grace period has passed. Nothing here blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starforge_daemon.core.ledger import Killing, Launching, Running, RunState, StopReason, stop_reason
from starforge_daemon.core.models import Outcome, OutcomeKind, Run, RunExit
from starforge_daemon.core.streams import Summary


@dataclass(frozen=True)
class Terminate:
    run_id: str
    reason: StopReason


@dataclass(frozen=True)
class Kill:
    run_id: str


Decision = Terminate | Kill


def _due(state: RunState, grace: float) -> float | None:
    """When ``state`` next calls for a decision: its deadline, or the end of its grace."""
    if isinstance(state, Launching | Running):
        return state.run.deadline
    return None if isinstance(state, Killing) else state.since + grace


def enforce(runs: Iterable[RunState], now: float, grace: float) -> list[Decision]:
    decisions: list[Decision] = []
    for state in runs:
        due = _due(state, grace)
        if due is None or now < due:
            continue
        run_id = state.run.run_id
        decisions.append(Terminate(run_id, StopReason.TIMEOUT)
                         if isinstance(state, Launching | Running) else Kill(run_id))
    return decisions


def next_deadline(runs: Iterable[RunState], grace: float) -> float | None:
    """The earliest moment at which :func:`enforce` would decide something new."""
    return min((due for state in runs if (due := _due(state, grace)) is not None), default=None)


def free_capacity(limit: int, running: int, accepting: bool) -> int:
    return max(0, limit - running) if accepting else 0


def outcome_of(state: RunState, ended: RunExit | None) -> Outcome:
    """How a run ended, from what the keeper recorded and why the daemon was stopping it.

    A run that failed after its deadline timed out even when the daemon that sent the SIGTERM
    died before seeing the end.
    """
    run = state.run
    stop = stop_reason(state)
    if ended is None:
        return Outcome(kind=OutcomeKind.LOST,
                       reason="the run ended while no one recorded its exit status")
    if ended.error is not None or ended.exit_code is None:
        return Outcome(kind=OutcomeKind.FAILED, reason=ended.error or "no exit status")
    code = ended.exit_code
    if stop is StopReason.SHUTDOWN:
        return Outcome(kind=OutcomeKind.KILLED, exit_code=code,
                       reason=f"killed by daemon shutdown (exit {code})")
    if stop is StopReason.OPERATOR:
        return Outcome(kind=OutcomeKind.KILLED, exit_code=code,
                       reason=f"stopped by the operator (exit {code})")
    if ended.oom_kills:
        return Outcome(kind=OutcomeKind.OOM, exit_code=code,
                       reason=f"over its memory limit: the kernel killed {ended.oom_kills} of "
                              f"its processes (exit {code})")
    if stop is StopReason.TIMEOUT or (code != 0 and ended.ended_at >= run.deadline):
        return Outcome(kind=OutcomeKind.TIMED_OUT, exit_code=code,
                       reason=f"timed out after {run.timeout:g}s (exit {code})")
    return _by_its_own_account(ended.stream, code) or Outcome.from_exit_code(code)


def _by_its_own_account(stream: Summary | None, code: int) -> Outcome | None:
    """A run whose CLI reported failing failed, whatever its exit status (Claude Code exits 0
    after an API error); one that exited 0 without the result line its CLI always ends with
    did not finish its work."""
    if stream is None:
        return None
    if stream.failure:
        return Outcome(kind=OutcomeKind.FAILED, exit_code=code,
                       reason=f"the agent reported: {stream.failure} (exit {code})")
    if code == 0 and stream.expects_result and not stream.got_result:
        return Outcome(kind=OutcomeKind.FAILED, exit_code=code,
                       reason="no result: the agent exited 0 without its final result")
    return None


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


@dataclass(frozen=True)
class Requeue:
    """Run the trigger again, from where it is, not before ``not_before``."""

    run_id: str
    not_before: float


@dataclass(frozen=True)
class Archive:
    run_id: str
    outcome: Outcome


def after_run(run: Run, outcome: Outcome, attempts_made: int, backoff: Backoff,
              now: float) -> Requeue | Archive:
    """What becomes of a trigger whose run ended: another attempt after its backoff, or the
    archive."""
    delay = retry_delay(outcome.kind, attempts_made, run.max_retries, backoff)
    return Archive(run.run_id, outcome) if delay is None else Requeue(run.run_id, now + delay)
