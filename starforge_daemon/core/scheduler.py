"""Pure decisions about runs in flight: which to stop, which to kill, when to look again, and
what becomes of a trigger whose run ended (requeue it for another attempt, or archive it).

Kill escalation is data: a run being stopped carries the time its SIGTERM went out, and a
later tick turns that into a SIGKILL once the grace period has passed. Nothing here blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from starforge_daemon.core.ledger import Killing, RunState, Stopping, StopReason, stop_reason
from starforge_daemon.core.models import Outcome, OutcomeKind, Run, RunExit
from starforge_daemon.core.streams import Summary
from starforge_daemon.core.streams.reports import LiveProgress


@dataclass(frozen=True)
class Terminate:
    run_id: str
    reason: StopReason


@dataclass(frozen=True)
class Kill:
    run_id: str


Decision = Terminate | Kill

REPORT_DELAY = 1.0  # a run's progress reaches the daemon up to a second after its event


@dataclass(frozen=True)
class Watchdogs:
    """What stops a run read as events besides its timeout (None: off): no first event, no
    event for a while, still running after its result, its cost over the budget. Also how
    such a run's own account is judged."""

    first_output: float | None = None
    stall: float | None = None
    result_grace: float | None = None
    max_cost: float | None = None
    fail_on_denial: bool = False

    def describe(self, reason: StopReason, stop_signal: str) -> str:
        """What a stop for ``reason`` is, for its WATCHDOG line."""
        stop = f"sending {stop_signal}"
        return {StopReason.NO_OUTPUT: f"no event in the first {self.first_output}s; {stop}",
                StopReason.STALLED: f"no event for {self.stall}s; {stop}",
                StopReason.LINGERING: f"still running {self.result_grace}s after its result; "
                                      f"{stop}",
                StopReason.OVER_BUDGET: f"its cost passed MAX_RUN_COST_USD={self.max_cost}; "
                                        f"{stop}"}[reason]


def due_moment(state: RunState, grace: float, live: LiveProgress | None,
               dogs: Watchdogs | None) -> tuple[float, StopReason | None] | None:
    """When ``state`` next calls for a decision, and which: a stop for a reason, or (None) the
    kill at the end of its grace. ``dogs`` None: a run read as text, its timeout alone."""
    if isinstance(state, Killing):
        return None
    if isinstance(state, Stopping):
        return state.since + grace, None
    run = state.run
    if dogs is None:
        return run.deadline, StopReason.TIMEOUT
    moments: list[tuple[float, StopReason | None]] = [(run.deadline, StopReason.TIMEOUT)]
    last_event = live.last_event_at if live else None
    if last_event is None and dogs.first_output is not None:
        moments.append((run.started_at + dogs.first_output, StopReason.NO_OUTPUT))
    if last_event is not None and dogs.stall is not None:
        moments.append((last_event + dogs.stall + REPORT_DELAY, StopReason.STALLED))
    if live is not None and live.result_at is not None and dogs.result_grace is not None:
        moments.append((live.result_at + dogs.result_grace, StopReason.LINGERING))
    cost = live.progress.cost_usd if live else None
    if dogs.max_cost is not None and cost is not None and cost > dogs.max_cost:
        moments.append((run.started_at, StopReason.OVER_BUDGET))
    return min(moments, key=lambda moment: moment[0])


def free_capacity(limit: int, running: int, accepting: bool) -> int:
    return max(0, limit - running) if accepting else 0


def outcome_of(state: RunState, ended: RunExit | None,
               dogs: Watchdogs | None = None) -> Outcome:
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
    dogs = dogs or Watchdogs()
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
    if stop is StopReason.NO_OUTPUT:
        return Outcome(kind=OutcomeKind.STALLED, exit_code=code,
                       reason=f"stalled: no event in the first {dogs.first_output:g}s "
                              f"(AGENT_FIRST_OUTPUT_TIMEOUT) (exit {code})")
    if stop is StopReason.STALLED:
        return Outcome(kind=OutcomeKind.STALLED, exit_code=code,
                       reason=f"stalled: no event for {dogs.stall:g}s (AGENT_STALL_TIMEOUT) "
                              f"(exit {code})")
    if stop is StopReason.OVER_BUDGET:
        cost = ended.stream.cost_usd if ended.stream else None
        spent = f"${cost:.4f}" if cost is not None else "its cost"
        return Outcome(kind=OutcomeKind.OVER_BUDGET, exit_code=code,
                       reason=f"over budget: {spent} passed MAX_RUN_COST_USD={dogs.max_cost:g} "
                              f"(exit {code})")
    if stop is StopReason.LINGERING:  # judged by its result, as if it had exited then
        return _by_its_own_account(ended.stream, 0, dogs) or Outcome(
            kind=OutcomeKind.SUCCEEDED, exit_code=code,
            reason=f"succeeded by its result; stopped {dogs.result_grace:g}s after it "
                   f"(AGENT_RESULT_GRACE) (exit {code})")
    return _by_its_own_account(ended.stream, code, dogs) or Outcome.from_exit_code(code)


def _by_its_own_account(stream: Summary | None, code: int, dogs: Watchdogs) -> Outcome | None:
    """A run whose CLI reported failing failed, whatever its exit status (Claude Code exits 0
    after an API error); one that exited 0 without the result line its CLI always ends with
    did not finish its work. A rate limit is not the work's failure: it is tried again."""
    if stream is None:
        return None
    if stream.rate_limited:
        return Outcome(kind=OutcomeKind.RATE_LIMITED, exit_code=code,
                       reason=f"rate-limited: {stream.failure or 'the API refused'} (exit {code})")
    if stream.failure:
        return Outcome(kind=OutcomeKind.FAILED, exit_code=code,
                       reason=f"the agent reported: {stream.failure} (exit {code})")
    if code == 0 and stream.expects_result and not stream.got_result:
        return Outcome(kind=OutcomeKind.FAILED, exit_code=code,
                       reason="no result: the agent exited 0 without its final result")
    if dogs.fail_on_denial and stream.permission_denials:
        return Outcome(kind=OutcomeKind.FAILED, exit_code=code,
                       reason=f"permission denied {stream.permission_denials} time(s) "
                              f"(FAIL_ON_PERMISSION_DENIAL) (exit {code})")
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
    """Run the trigger again, from where it is, not before ``not_before``; a run held back by
    a rate limit is not ``counted`` as an attempt."""

    run_id: str
    not_before: float
    counted: bool = True


@dataclass(frozen=True)
class Archive:
    run_id: str
    outcome: Outcome


def after_run(run: Run, outcome: Outcome, attempts_made: int, backoff: Backoff,
              now: float, held_until: float | None = None) -> Requeue | Archive:
    """What becomes of a trigger whose run ended: another attempt after its backoff, or the
    archive. A rate-limited run waits for the hold to end and is tried again uncounted."""
    if outcome.kind is OutcomeKind.RATE_LIMITED and held_until is not None:
        return Requeue(run.run_id, held_until, counted=False)
    delay = retry_delay(outcome.kind, attempts_made, run.max_retries, backoff)
    return Archive(run.run_id, outcome) if delay is None else Requeue(run.run_id, now + delay)
