"""The daemon's loop. One thread owns the queue, the slots and the runs in flight.

Each turn waits for the next thing to happen (a run reporting, a trigger arriving, a signal,
a deadline), applies it, then dispatches what may start and saves what changed.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from starforge_daemon.core import scheduler
from starforge_daemon.core.command import placeholder_values, render_argv, run_environment
from starforge_daemon.core.ledger import (
    Killing,
    Launching,
    Ledger,
    RunState,
    Stopping,
    StopReason,
    stop_reason,
)
from starforge_daemon.core.models import OutcomeKind, Run, RunExit, iso_utc
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.core.scheduler import Kill, Terminate
from starforge_daemon.daemon.finisher import Finisher
from starforge_daemon.daemon.load import MemoryGauge
from starforge_daemon.daemon.operator import Operator
from starforge_daemon.daemon.persistence import Persistence
from starforge_daemon.daemon.recovery import recover_runs
from starforge_daemon.intake.reader import Inbox, TriggerReader
from starforge_daemon.intake.triggers import Accepted, QueuedTrigger, Rejected, examine, load_trigger
from starforge_daemon.intake.validate import InvalidTrigger
from starforge_daemon.runtime.local.client import Exited, LaunchSpec, RunEvent, Runner, RunnerError, Started
from starforge_daemon.store.atomic import move_unique, read_json_object
from starforge_daemon.store.control_socket import Reply
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.records import Archive, Attempts, History, RunJournal, StateFile
from starforge_daemon.store.settings import Settings, dotenv_extras
from starforge_daemon.store.slots import SlotTable
from starforge_daemon.workspaces.base import SharedCheckout, WorkspaceError, Workspaces

DAEMON_ONLY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class StopMode(StrEnum):
    STOP = "stop"  # stop the agents too (SIGTERM, ``starforge daemon stop``)
    HANDOFF = "handoff"  # leave agents running for the next daemon (``restart``)


@dataclass
class Periodic:
    """Upkeep that runs every ``interval`` seconds on the loop's thread (log rotation, pings)."""

    interval: float
    action: Callable[[float], None]
    next_at: float = 0.0


class Engine:
    def __init__(self, settings: Settings, paths: ProjectPaths, runner: Runner, log: Any,
                 clock: Callable[[], float] = time.time,
                 on_stopping: Callable[[], None] = lambda: None,
                 workspaces: Workspaces | None = None) -> None:
        self.settings = settings
        self.paths = paths
        self.runner = runner
        self.log = log
        self.clock = clock
        self.on_stopping = on_stopping
        self.workspaces = workspaces or SharedCheckout(paths.root)
        self.ledger = Ledger()
        self.queue = TriggerQueue(settings.pools, self.ledger.is_busy)
        self.inbox = Inbox(runner.wake)
        self.attempts = Attempts(paths)
        self.reader = TriggerReader(paths.triggers, self.inbox,
                                    max_bytes=settings.MAX_TRIGGER_BYTES,
                                    allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS,
                                    settle_seconds=settings.TRIGGER_SETTLE_SECONDS,
                                    not_before=self.attempts.not_before)
        self.held_back: str | None = None
        self._memory = MemoryGauge(settings.MIN_FREE_MEMORY_PERCENT)
        self.archive = Archive(paths)
        self.journal = RunJournal(paths)
        self.saved = Persistence(SlotTable(paths.slots_file), StateFile(paths.state_file),
                                 self.ledger, log)
        self.finisher = Finisher(
            queue=self.queue, ledger=self.ledger, saved=self.saved, archive=self.archive,
            attempts=self.attempts, journal=self.journal, history=History(paths.history_file),
            workspaces=self.workspaces, log=log,
            backoff=scheduler.Backoff(settings.RETRY_BACKOFF, settings.RETRY_BACKOFF_MAX))
        self.operator = Operator(paths, self.queue, self.ledger, self.archive, self.attempts,
                                 self.saved, log, runner.wake, self._terminate)
        self.started_at = clock()
        self.stop_request: StopMode | None = None
        self.stop_mode: StopMode | None = None
        self._command = settings.command_words
        self.agent_program = settings.agent_program
        environment = {**dotenv_extras(paths), **os.environ}
        self._base_env = {key: value for key, value in environment.items()
                          if key not in DAEMON_ONLY_VARIABLES}
        self._next_sweep = 0.0
        self._periodic: list[Periodic] = []

    def every(self, interval: float, action: Callable[[float], None]) -> None:
        """Run ``action(now)`` every ``interval`` seconds, first at start, never on dispatch."""
        self._periodic.append(Periodic(interval, action))

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Restore from disk and take in the triggers already waiting."""
        self.paths.ensure()
        self.saved.slots, problem = SlotTable.load(self.paths.slots_file)
        if problem:
            self.log.error("RECOVERY", msg=problem)
        if self.saved.state_file.load() is None and self.paths.state_file.exists():
            self.log.error("RECOVERY", msg="daemon-state.json is unreadable; rebuilding it")
        self.log.info("MODE", msg=self.settings.mode_text,  # a {placeholder} program: as written
                      agent=self.agent_program or self._command[0],
                      timeout=self.settings.AGENT_TIMEOUT)
        paused = read_json_object(self.paths.paused_file)  # pauses outlive the daemon
        if paused.get("all"):
            self.queue.pause(None)
        for agent in paused.get("agents", []):
            self.queue.pause(str(agent))
        self.runner.connect()
        for note in self.workspaces.start():
            self.log.warning("RECOVERY", msg=note)
        self._recover()
        now = self.clock()
        self.reader.scan(self.queue)
        self._next_sweep = now + self.settings.PROCESS_MONITOR_INTERVAL
        self._dispatch(now)
        self.finisher.archive_finished(now)
        self.saved.save(now, self.state, force=True)

    def run(self, on_ready: Callable[[], None]) -> None:
        self.prepare()
        on_ready()
        while not self.finished:
            self.step()
        self.journal.close()

    @property
    def finished(self) -> bool:
        return self.stop_mode is not None and (self.stop_mode is StopMode.HANDOFF
                                               or not self.ledger)

    def step(self) -> None:
        """One turn of the loop: wait, then apply what happened."""
        now = self.clock()
        wake_at = self._next_wakeup(now)
        events = self.runner.wait(None if wake_at is None else max(0.0, wake_at - now))
        self.apply(events, self.clock())

    def apply(self, events: list[RunEvent], now: float) -> None:
        for event in events:
            if isinstance(event, Started):
                self._on_started(event)
            elif isinstance(event, Exited):
                self._on_exited(event, now)
        if self.stop_request and self.stop_mode is None:
            self._begin_stop(self.stop_request, now)
        self.operator.serve(now)
        self._take_in(now)
        self._enforce(now)
        if now >= self._next_sweep:
            self._sweep(now)
        self._dispatch(now)
        self.finisher.archive_finished(now)
        self._run_periodic(now)
        self.saved.save(now, self.state, force=self.finished)

    def _next_wakeup(self, now: float) -> float | None:
        if (self.stop_request and self.stop_mode is None) or self.operator.pending:
            return now
        moments = [self._next_sweep, self.reader.next_wakeup(now), self.queue.next_due(),
                   scheduler.next_deadline(self.ledger, self.settings.AGENT_KILL_GRACE)]
        if self.held_back and len(self.queue):
            moments.append(now + MemoryGauge.INTERVAL)
        moments.extend(task.next_at for task in self._periodic)
        moments.extend(self.saved.due())
        return min(moment for moment in moments if moment is not None)

    # -- intake ------------------------------------------------------------------------------

    def _take_in(self, now: float) -> None:
        for name, verdict in self.reader.read(now, self.queue):
            if isinstance(verdict, Accepted):
                self.queue.add(verdict.entry)
                self.log.info("QUEUE", trigger=name, agent=verdict.entry.agent,
                              queued=len(self.queue))
            else:
                self._reject(self.paths.triggers / name, name, verdict.reason, now)

    def _reject(self, path: Path, name: str, reason: str, now: float) -> None:
        result = {"trigger": name, "outcome": OutcomeKind.INVALID.value, "reason": reason,
                  "exit_code": None}
        try:
            self.archive.put(path, name, result, now)
        except FileNotFoundError:
            return
        except OSError as error:
            self.log.error("ERROR", msg="cannot archive invalid trigger", trigger=name,
                           error=str(error))
            return
        self.saved.count("invalid")
        self.log.error("INVALID", trigger=name, reason=reason)

    # -- runs --------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        capacity = scheduler.free_capacity(self.settings.concurrency_limit, len(self.ledger),
                                           accepting=self.stop_mode is None)
        if capacity and len(self.queue) and self._holding_back(now):
            return
        while capacity > 0:
            taken = self.queue.take_next(now)
            if taken is None:
                return
            entry, agent = taken
            if self._start_run(entry, agent, now):
                capacity -= 1
            else:
                self.queue.offer(agent)

    def _holding_back(self, now: float) -> bool:
        """MIN_FREE_MEMORY_PERCENT: no new run while memory is short; said once per spell."""
        reason = self._memory.shortage(now)
        if reason != self.held_back:
            self.held_back = reason
            self.saved.changed()
            if reason:
                self.log.warning("HOLD", msg=f"not starting new runs: {reason}",
                                 queued=len(self.queue))
            else:
                self.log.info("HOLD", msg="memory available again; starting runs")
        return reason is not None

    def _start_run(self, entry: QueuedTrigger, agent: str, now: float) -> bool:
        try:
            claimed = self.paths.running / entry.name if entry.claimed \
                else move_unique(self.paths.triggers / entry.name, self.paths.running)
        except FileNotFoundError:
            self.log.info("QUEUE", msg="trigger vanished before it could run", trigger=entry.name)
            return False
        try:
            trigger = load_trigger(claimed, self.settings.MAX_TRIGGER_BYTES,
                                   self.settings.ALLOW_FOREIGN_TRIGGERS)
        except (InvalidTrigger, OSError) as error:
            self._reject(claimed, entry.name, str(error), now)
            return False
        run_id = f"{agent}-{int(now)}-{secrets.token_hex(3)}"
        log_path = self.paths.logs / f"{run_id}.log"
        earlier = self.attempts.load(entry.name)[0]
        max_retries = self.settings.MAX_RETRIES if trigger.max_retries is None \
            else trigger.max_retries
        run = Run(run_id=run_id, agent=agent, trigger_name=entry.name,
                  trigger_path=str(claimed), log_path=str(log_path), started_at=now,
                  timeout=self.settings.AGENT_TIMEOUT, ticket=trigger.ticket_text,
                  action=trigger.action, from_agent=trigger.from_agent,
                  pool=trigger.to_agent if trigger.to_agent != agent else None,
                  attempt=len(earlier) + 1, max_retries=max_retries,
                  priority=trigger.priority)
        try:
            workspace = self.workspaces.prepare(run)
        except WorkspaceError as error:
            self._finish(Launching(run), RunExit(ended_at=now, error=str(error)), now)
            return True
        run = replace(run, workdir=workspace.directory)
        self.ledger.add(Launching(run))
        values = placeholder_values(run, trigger, str(claimed))
        environment = run_environment(self._base_env, values, str(self.paths.root))
        spec = LaunchSpec(run_id=run_id, argv=render_argv(self._command, values),
                          env={**environment, **workspace.env}, cwd=workspace.directory,
                          log_path=log_path, log_cap=self.settings.LOG_MAX_BYTES)
        try:
            self.runner.launch(spec, self.journal.create(run))
        except (OSError, RunnerError) as error:
            self.journal.done(run_id)
            self.log.error("ERROR", msg="cannot start run", trigger=entry.name, error=str(error))
            self._finish(Launching(run), RunExit(ended_at=now, error=f"cannot start: {error}"),
                         now)
            return True
        self.saved.count("spawned")
        return True

    def _on_started(self, event: Started) -> None:
        state = self.ledger.started(event.run_id, event.agent)
        if state is None:
            return
        run = state.run
        if isinstance(state, Stopping | Killing):  # asked to stop before its process was known
            self.runner.signal(event.agent, signal.SIGKILL if isinstance(state, Killing)
                               else signal.SIGTERM)
        self.log.info("SPAWNED", agent=run.agent, ticket=run.ticket, pid=event.agent.pid,
                      run=run.run_id, trigger=run.trigger_name)

    def _on_exited(self, event: Exited, now: float) -> None:
        state = self.ledger.get(event.run_id)
        if state is not None:
            self._finish(state, event.exit, now)

    def _finish(self, state: RunState, ended: RunExit | None, now: float) -> None:
        if stop_reason(state) is not None and state.handle is not None:
            self.runner.signal(state.handle, signal.SIGKILL)  # leftovers in the session
        self.finisher.finish(state, ended, now)

    def _enforce(self, now: float) -> None:
        for decision in scheduler.enforce(self.ledger, now, self.settings.AGENT_KILL_GRACE):
            run = self.ledger[decision.run_id].run
            if isinstance(decision, Terminate):
                self.log.warning("TIMEOUT", agent=run.agent, run=run.run_id,
                                 msg=f"past AGENT_TIMEOUT={run.timeout:g}s; sending SIGTERM")
                self._terminate(run.run_id, decision.reason, now)
            else:
                assert isinstance(decision, Kill)
                killing = self.ledger.kill(run.run_id)
                self.log.warning("TIMEOUT", agent=run.agent, run=run.run_id,
                                 msg="still running after the grace period; sending SIGKILL")
                if killing.handle is not None:  # else sent once the runner reports it
                    self.runner.signal(killing.handle, signal.SIGKILL)

    def _terminate(self, run_id: str, reason: StopReason, now: float) -> None:
        """Ask a run to stop (SIGTERM once); ``_enforce`` sends SIGKILL after the grace."""
        before = self.ledger[run_id]
        state = self.ledger.stop(run_id, reason, now)
        if not isinstance(before, Stopping | Killing) and state.handle is not None:
            self.runner.signal(state.handle, signal.SIGTERM)

    def logs_in_use(self) -> list[str]:
        return [state.run.log_path for state in self.ledger]

    def _begin_stop(self, mode: StopMode, now: float) -> None:
        self.stop_mode = mode
        self.on_stopping()
        self.log.info("SHUTDOWN", mode=mode.value, running=len(self.ledger),
                      queued=len(self.queue),
                      msg="leaving agents running for the next daemon"
                      if mode is StopMode.HANDOFF else "stopping agents")
        if mode is StopMode.STOP:
            for state in self.ledger:
                self._terminate(state.run.run_id, StopReason.SHUTDOWN, now)

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
            self.reader.scan(self.queue)
        except OSError as error:
            self.log.error("ERROR", msg="cannot scan the trigger folder", error=str(error))
        self.saved.changed()

    def _run_periodic(self, now: float) -> None:
        for task in self._periodic:
            if now >= task.next_at:
                task.next_at = now + task.interval
                try:
                    task.action(now)
                except Exception as error:  # upkeep must never stop the daemon
                    self.log.error("ERROR", msg="upkeep failed", task=task.action.__name__,
                                   error=repr(error))

    def _recover(self) -> None:
        result = recover_runs(self.journal, self.runner, self.paths.running,
                              self.paths.triggers, self.attempts)
        for note in result.notes:
            self.log.warning("RECOVERY", msg=note)
        for path in result.retries:
            self._requeue_retry(path)
        for name in result.requeued:
            self.log.warning("RECOVERY", msg="trigger was claimed but never started; queued again",
                             trigger=name)
        for state in result.adopted:
            run = state.run
            self.ledger.add(state)
            self.log.warning("RECOVERY", msg="adopted a run that is still going", agent=run.agent,
                             run=run.run_id, pid=state.handle.pid)
        for run, ended in result.to_finish:
            self.log.warning("RECOVERY", msg="finishing a run that ended while no daemon ran",
                             agent=run.agent, run=run.run_id,
                             exit_code=ended.exit_code if ended else None)
            self._finish(Launching(run), ended, self.clock())

    def _requeue_retry(self, path: Path) -> None:
        """A retry left waiting in ``running/`` by an earlier daemon goes back into the queue."""
        verdict = examine(path, self.clock(), max_bytes=self.settings.MAX_TRIGGER_BYTES,
                          allow_foreign=self.settings.ALLOW_FOREIGN_TRIGGERS, settle_seconds=0)
        if isinstance(verdict, Accepted):
            self.queue.add(replace(verdict.entry, not_before=self.attempts.not_before(path.name),
                                   claimed=True))
        elif isinstance(verdict, Rejected):
            self._reject(path, path.name, verdict.reason, self.clock())

    def state(self, now: float) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_at": iso_utc(self.started_at),
            "updated_at": iso_utc(now),
            "mode": "parallel" if self.settings.PARALLEL_DAEMON else "sequential",
            "max_concurrent": self.settings.concurrency_limit,
            "agent_timeout": self.settings.AGENT_TIMEOUT,
            "agent_program": self.agent_program,
            "running": len(self.ledger),
            "queued": len(self.queue),
            "stopping": self.stop_mode.value if self.stop_mode else None,
            "paused": self.queue.pauses,
            "held_back": self.held_back,
            "pools": {pool: list(members) for pool, members in self.settings.pools.items()},
            "counters": dict(sorted(self.saved.counters.items())),
        }
