"""The daemon's loop. One thread owns the queue, the slots and the runs in flight.

Each turn waits for the next thing to happen (a run reporting, a trigger arriving, a signal,
a deadline), applies it, then dispatches what may start and saves what changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from starforge_daemon.core import scheduler
from starforge_daemon.core.events import (
    Contained,
    EventsLost,
    Mode,
    Problem,
    Publisher,
    RecoveryNote,
    ShuttingDown,
    Spawned,
    StateDamaged,
)
from starforge_daemon.core.holds import HoldRules, Holds
from starforge_daemon.core.ledger import Ledger, StopReason
from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.core.sessions import TicketSessions
from starforge_daemon.daemon.admission import Admission
from starforge_daemon.daemon.archivist import Archivist
from starforge_daemon.daemon.enforcer import Enforcer
from starforge_daemon.daemon.finisher import Finisher
from starforge_daemon.daemon.handover import HandOver
from starforge_daemon.daemon.load import MemoryGauge
from starforge_daemon.daemon.operator import Operator
from starforge_daemon.daemon.past import read_past
from starforge_daemon.daemon.periodic import Upkeep
from starforge_daemon.daemon.persistence import Persistence, Stores
from starforge_daemon.daemon.reactor import Reactor
from starforge_daemon.daemon.recovery import recover_runs, take_over
from starforge_daemon.daemon.starter import Gauge, Start, Starter
from starforge_daemon.intake.reader import Inbox, TriggerReader
from starforge_daemon.intake.recent import RecentTriggers
from starforge_daemon.intake.triggers import Accepted
from starforge_daemon.runtime.api import Exited, Progressed, RunEvent, Runner, Started, Withdrawn
from starforge_daemon.store.control_socket import Reply
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import ResumeMode, Settings, WorktreeMode
from starforge_daemon.store.slots import SlotTable
from starforge_daemon.store.state import DaemonState
from starforge_daemon.workspaces.base import Workspaces


class StopMode(StrEnum):
    STOP = "stop"  # stop the agents too (``starforge daemon stop``)
    HANDOFF = "handoff"  # leave agents running for the next daemon (``restart``)


class Engine:
    """The seams (reactor, runner, stores, workspaces, memory gauge, clock, event publisher) come
    in through the constructor: ``service.py`` builds the real ones, tests pass fakes."""

    def __init__(self, settings: Settings, paths: ProjectPaths, *, reactor: Reactor,
                 runner: Runner, stores: Stores,
                 workspaces: Workspaces, gauge: Gauge, clock: Callable[[], float],
                 events: Publisher, base_env: Mapping[str, str],
                 on_stopping: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.paths = paths
        self.reactor = reactor
        self.runner = runner
        self.stores = stores
        self.workspaces = workspaces
        self.clock = clock
        self.events = events
        self.on_stopping = on_stopping
        self.ledger = Ledger()
        self.queue = TriggerQueue(settings.pools, self.ledger.is_busy)
        self.inbox = Inbox()
        self.holds = Holds(HoldRules(settings.RATE_LIMIT_HOLD, settings.RATE_LIMIT_MAX_HOLD,
                                     settings.DAILY_COST_LIMIT_USD))
        self.enforcer = Enforcer(settings, self.ledger, runner, events)
        self.sessions = TicketSessions() if settings.RESUME_SESSIONS is ResumeMode.PER_TICKET \
            and settings.output_kind == "claude" \
            else None
        recent = RecentTriggers()
        self.reader = TriggerReader(paths.triggers, self.inbox,
                                    max_bytes=settings.MAX_TRIGGER_BYTES,
                                    allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS,
                                    settle_seconds=settings.TRIGGER_SETTLE_SECONDS,
                                    not_before=stores.attempts.not_before,
                                    recent=recent, on_lost=lambda: events.publish(EventsLost()))
        self.saved = Persistence(SlotTable(paths.slots_file), stores.state_file, self.ledger,
                                 events)
        self.handover = HandOver(runner, self.ledger, self.queue, stores.journal, depth=(
            settings.SEQUENTIAL_HANDOVER if settings.concurrency_limit == 1
            and settings.output_kind == "text" and settings.DAILY_COST_LIMIT_USD is None
            and settings.WORKTREE_MODE is WorktreeMode.OFF else 0))
        archivist = Archivist(stores.archive, stores.history, events)
        self.admission = Admission(self.queue, archivist, self.holds, events, paths.triggers,
                                   settings.DEPENDENCY_WAIT)
        self.finisher = Finisher(
            queue=self.queue, ledger=self.ledger, saved=self.saved, stores=stores,
            workspaces=workspaces, events=events,
            backoff=scheduler.Backoff(settings.RETRY_BACKOFF, settings.RETRY_BACKOFF_MAX),
            dogs=self.enforcer.dogs, holds=self.holds, sessions=self.sessions, archivist=archivist)
        self.starter = Starter(settings=settings, paths=paths, ledger=self.ledger, runner=runner,
                               stores=stores, workspaces=workspaces, gauge=gauge,
                               finisher=self.finisher, saved=self.saved, events=events,
                               base_env=base_env, holds=self.holds, sessions=self.sessions,
                               upstream_results=self.admission.upstream_results,
                               recent=recent, handover=self.handover)
        self.operator = Operator(paths, self.admission, self.ledger, archivist, stores.attempts,
                                 self.saved, events, reactor.wake, self.enforcer.terminate, runner)
        self.started_at = clock()
        self.stop_request: StopMode | None = None
        self.stop_mode: StopMode | None = None
        self.agent_program = settings.agent_program
        self._next_sweep = 0.0
        self.upkeep = Upkeep(events)

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Restore from disk and take in the triggers already waiting."""
        self.paths.ensure()
        self.saved.slots, problem = SlotTable.load(self.paths.slots_file)
        if problem:
            self.events.publish(StateDamaged(problem))
        if self.saved.state_file.load() is None and self.paths.state_file.exists():
            self.events.publish(StateDamaged("daemon-state.json is unreadable; rebuilding it"))
        self.events.publish(Mode(self.settings.mode_text,  # a {placeholder} program: as written
                                 self.agent_program or self.starter.command[0],
                                 self.settings.AGENT_TIMEOUT))
        self.events.publish(Contained(self.runner.containment))
        self.operator.restore_pauses()
        read_past(self.stores.history, self.holds, self.sessions, self.clock(), self.events,
                  self.settings.DAILY_COST_LIMIT_USD is not None)
        self.runner.connect()
        for note in self.workspaces.start():
            self.events.publish(RecoveryNote(note))
        now = self.clock()
        take_over(recover_runs(self.stores.journal, self.runner, self.paths.running,
                               self.paths.triggers, self.stores.attempts, now),
                  ledger=self.ledger, queue=self.queue, starter=self.starter,
                  finisher=self.finisher, events=self.events, now=now)
        for state in self.ledger:
            self.admission.track(state.run.trigger_ident, state.run.dedupe_key,
                                 state.run.trigger_name)
        for entry in self.queue:  # retries waiting out their backoff
            self.admission.track(entry.id, entry.dedupe_key, entry.name)
        self.reader.scan(self.admission)
        self._next_sweep = now + self.settings.PROCESS_MONITOR_INTERVAL
        self._dispatch(now)
        self._archive(now)
        self.saved.save(now, self.state, force=True)

    def run(self, on_ready: Callable[[], None]) -> None:
        self.prepare()
        on_ready()
        while not self.finished:
            self.step()
        self.stores.journal.close()

    @property
    def finished(self) -> bool:
        return self.stop_mode is not None and (self.stop_mode is StopMode.HANDOFF
                                               or not (self.ledger or self.handover))

    def step(self) -> None:
        """One turn of the loop: wait, then apply what happened."""
        now = self.clock()
        events = self.runner.take_events()  # some came with the runner's connect
        if not events:
            wake_at = self._next_wakeup(now)
            self.reactor.wait(None if wake_at is None else max(0.0, wake_at - now))
            events = self.runner.take_events()
        self.apply(events, self.clock())

    def apply(self, events: list[RunEvent], now: float) -> None:
        for event in events:
            if isinstance(event, Started):
                self._on_started(event, now)
            elif isinstance(event, Exited):
                self._on_exited(event, now)
            elif isinstance(event, Progressed):
                self._on_progress(event, now)
            elif isinstance(event, Withdrawn):
                self.handover.withdrawn(event.run_id)
        if self.stop_request and self.stop_mode is None:
            self._begin_stop(self.stop_request, now)
        # a request that changes something waits until the runs on deck are taken back
        self.operator.serve(now, changes=not self.handover)
        self._take_in(now)
        self.enforcer.enforce(now)
        if now >= self._next_sweep:
            self._sweep(now)
        if self.handover:
            self.handover.review(self.stop_mode is None and not self.operator.pending
                                 and not self.starter.holding_back(now, len(self.queue)), now)
        self._dispatch(now)
        self._archive(now)
        self.upkeep.run(now)
        self.saved.save(now, self.state, force=self.finished)

    def _next_wakeup(self, now: float) -> float | None:
        if (self.stop_request and self.stop_mode is None) or (
                self.operator.pending and not self.handover):  # else the runner's word wakes us
            return now
        moments = [self._next_sweep, self.reader.next_wakeup(now), self.queue.next_due(),
                   self.enforcer.next_deadline(),
                   hold.ends_at if (hold := self.holds.current(now)) else None,
                   self.admission.next_due()]
        if self.starter.held_back and len(self.queue):
            moments.append(now + MemoryGauge.INTERVAL)
        moments.extend(self.upkeep.due())
        moments.extend(self.saved.due())
        return min(moment for moment in moments if moment is not None)

    # -- intake ------------------------------------------------------------------------------

    def _take_in(self, now: float) -> None:
        accepted = []
        for name, verdict in self.reader.read(now, self.admission):
            if isinstance(verdict, Accepted):
                accepted.append(verdict.entry)
            else:
                self.admission.reject(name, verdict.reason, now)
        if accepted:
            self.admission.admit(accepted, now)

    # -- runs --------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        capacity = scheduler.free_capacity(self.settings.concurrency_limit,
                                           len(self.ledger) + len(self.handover),
                                           accepting=self.stop_mode is None)
        if capacity and (len(self.queue) or self.starter.held_back) \
                and self.starter.holding_back(now, len(self.queue)):
            if not self.holds.probe_due(now):
                return
            capacity = 1  # one start tells whether the project's files take writes again
        while capacity > 0:
            taken = self.queue.take_next(now)
            if taken is None:
                return
            started, entry = self.starter.start(*taken, now)
            if started is Start.USED:
                capacity -= 1
            elif started is Start.SKIPPED:
                self.queue.offer(taken[1])
            else:
                self.queue.add(entry)  # it waits for the disk, in its place
                return
        self._hand_over(now)

    def _hand_over(self, now: float) -> None:
        """One at a time: the next triggers, handed over to start when the run before ends."""
        if self.stop_mode is not None or self.operator.pending:
            return
        while (behind := self.handover.behind()) is not None:  # at most one run in flight
            in_flight = next((state.run.agent for state in self.ledger), None)
            if in_flight is not None:
                self.queue.offer(in_flight)  # its triggers wait for it to be free: not now
            taken = self.queue.take_next(now, freeing=in_flight)
            if taken is None:
                return
            started, entry = self.starter.start(*taken, now, behind=behind.run_id)
            if started is not Start.USED:
                if started is Start.REFUSED:
                    self.queue.add(entry)
                return

    def _archive(self, now: float) -> None:
        """After the dispatch: the runs that ended, then what waited for them (whose agents
        may be free, so another dispatch)."""
        self.finisher.archive_finished(now, starting=len(self.handover))
        if self.admission.settle(now):
            self._dispatch(now)

    def _on_started(self, event: Started, now: float) -> None:
        self.handover.board(event.run_id, now)
        state = self.ledger.started(event.run_id, event.handle)
        if state is None:
            return
        run = state.run
        self.events.publish(Spawned(run.agent, run.ticket, event.handle.pid, run.run_id,
                                    run.trigger_name))
        if self.stop_mode is StopMode.STOP:  # one handed over began as the stop came
            self.enforcer.terminate(run.run_id, StopReason.SHUTDOWN, now)

    def _on_exited(self, event: Exited, now: float) -> None:
        self.handover.board(event.run_id, now)  # one on deck may end without starting
        state = self.ledger.get(event.run_id)
        if state is not None:
            self.finisher.finish(state, event.exit, now)

    def _on_progress(self, event: Progressed, now: float) -> None:
        self.ledger.report(event.run_id, event.live)
        reset = event.live.progress.rate_limit_until
        if reset is not None and reset > now and reset != self.holds.rate_limited_until:
            self.holds.rate_limited(reset, now)  # the run itself waits; new ones wait with it
            self.starter.holding_back(now, len(self.queue))  # said now, queue or not

    def logs_in_use(self) -> list[str]:
        return [state.run.log_path for state in self.ledger]

    def _begin_stop(self, mode: StopMode, now: float) -> None:
        self.stop_mode = mode
        self.on_stopping()
        self.events.publish(ShuttingDown(mode.value, len(self.ledger), len(self.queue),
                                         handoff=mode is StopMode.HANDOFF))
        if mode is StopMode.STOP:
            self.handover.review(False, now)  # taken back before the runs they wait behind end
            for state in self.ledger:
                self.enforcer.terminate(state.run.run_id, StopReason.SHUTDOWN, now)

    def submit(self, request: dict[str, Any], reply: Reply) -> None:
        """Thread-safe: an operator request, answered from the loop."""
        self.operator.submit(request, reply)

    # -- upkeep ------------------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """The periodic safety net: pick up triggers whose events were missed."""
        self._next_sweep = now + self.settings.PROCESS_MONITOR_INTERVAL
        if self.stop_mode is not None:
            return
        try:
            self.reader.scan(self.admission)
        except OSError as error:
            self.events.publish(Problem(msg="cannot scan the trigger folder", error=str(error)))
        self.saved.changed()

    def state(self, now: float) -> DaemonState:
        return DaemonState(
            pid=os.getpid(), started_at=iso_utc(self.started_at), updated_at=iso_utc(now),
            mode="parallel" if self.settings.PARALLEL_DAEMON else "sequential",
            max_concurrent=self.settings.concurrency_limit,
            agent_timeout=self.settings.AGENT_TIMEOUT, agent_program=self.agent_program,
            running=len(self.ledger),
            queued=len(self.queue) + len(self.admission.dependencies) + len(self.handover),
            stopping=self.stop_mode.value if self.stop_mode else None, paused=self.queue.pauses,
            held_back=self.starter.held_back,
            pools={pool: list(members) for pool, members in self.settings.pools.items()},
            counters=dict(sorted(self.saved.counters.items())),
            containment=self.runner.containment, notify_error=self.saved.notify_error)
