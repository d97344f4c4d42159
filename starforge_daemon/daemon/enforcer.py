"""Timeouts and watchdogs carried out: a run past its deadline is asked to stop, and killed
once its grace period has passed too."""

from __future__ import annotations

from starforge_daemon.core import scheduler
from starforge_daemon.core.deadlines import Deadlines
from starforge_daemon.core.events import KillEscalated, Publisher, TimedOut, Watched
from starforge_daemon.core.ledger import Killing, Ledger, Stopping, StopReason
from starforge_daemon.core.scheduler import Kill, Terminate
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.settings import Settings


class Enforcer:
    def __init__(self, settings: Settings, ledger: Ledger, runner: Runner,
                 events: Publisher) -> None:
        self.settings = settings
        self.ledger = ledger
        self.runner = runner
        self.events = events
        self.dogs = scheduler.Watchdogs(
            first_output=settings.AGENT_FIRST_OUTPUT_TIMEOUT, stall=settings.AGENT_STALL_TIMEOUT,
            result_grace=settings.AGENT_RESULT_GRACE, max_cost=settings.MAX_RUN_COST_USD,
            fail_on_denial=settings.FAIL_ON_PERMISSION_DENIAL)
        self._deadlines = Deadlines(ledger, settings.AGENT_KILL_GRACE,
                                   self.dogs if settings.output_kind != "text" else None)

    def next_deadline(self) -> float | None:
        return self._deadlines.next()

    def enforce(self, now: float) -> None:
        for decision in self._deadlines.decide(now):
            run = self.ledger[decision.run_id].run
            if isinstance(decision, Terminate):
                if decision.reason is StopReason.TIMEOUT:
                    self.events.publish(TimedOut(run.agent, run.run_id, run.timeout,
                                                 self.settings.AGENT_STOP_SIGNAL))
                else:
                    self.events.publish(Watched(run.agent, run.run_id, decision.reason.value,
                                                self.dogs.describe(
                                                    decision.reason,
                                                    self.settings.AGENT_STOP_SIGNAL)))
                self.terminate(run.run_id, decision.reason, now)
            else:
                assert isinstance(decision, Kill)
                self.ledger.kill(run.run_id)
                self.events.publish(KillEscalated(run.agent, run.run_id))
                self.runner.stop(run.run_id, force=True)

    def terminate(self, run_id: str, reason: StopReason, now: float) -> None:
        """Ask a run to stop (once); ``enforce`` has it killed after the grace period."""
        before = self.ledger[run_id]
        self.ledger.stop(run_id, reason, now)
        if not isinstance(before, Stopping | Killing):
            self.runner.stop(run_id, force=False)
