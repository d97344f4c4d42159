"""The daemon's loop. One thread owns the queue, the slots and the runs in flight.

Each turn waits for the next thing to happen (a run reporting, a trigger arriving, a signal,
a deadline), applies it, then dispatches what may start and saves what changed.
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from starforge_daemon.core import scheduler
from starforge_daemon.core.command import placeholder_values, render_argv, run_environment
from starforge_daemon.core.models import OutcomeKind, ProcessIdentity, Run, RunExit, iso_utc
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.core.scheduler import ActiveRun, Kill, StopReason, Terminate
from starforge_daemon.daemon.load import MemoryGauge
from starforge_daemon.daemon.recovery import recover_runs
from starforge_daemon.intake.reader import Inbox, TriggerReader
from starforge_daemon.intake.triggers import Accepted, QueuedTrigger, load_trigger
from starforge_daemon.intake.validate import InvalidTrigger
from starforge_daemon.runtime.local.client import Exited, LaunchSpec, RunEvent, Runner, RunnerError, Started
from starforge_daemon.store.atomic import move_unique, read_json_object, write_json_atomic
from starforge_daemon.store.control_socket import Reply
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.records import Archive, Attempts, History, RunJournal, StateFile, run_result
from starforge_daemon.store.settings import Settings, dotenv_extras
from starforge_daemon.store.slots import SlotTable
from starforge_daemon.workspaces.base import SharedCheckout, WorkspaceError, Workspaces

STATE_SAVE_INTERVAL = 1.0
SLOTS_SAVE_INTERVAL = 0.05
DAEMON_ONLY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
SAVE_RETRY_INTERVAL = 1.0


Request = tuple[dict[str, Any], Reply]


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
        self.queue = TriggerQueue(settings.pools)
        self.inbox = Inbox(runner.wake)
        self.attempts = Attempts(paths)
        self.reader = TriggerReader(paths.triggers, self.inbox,
                                    max_bytes=settings.MAX_TRIGGER_BYTES,
                                    allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS,
                                    settle_seconds=settings.TRIGGER_SETTLE_SECONDS,
                                    not_before=self.attempts.not_before)
        self.requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.held_back: str | None = None
        self._memory = MemoryGauge(settings.MIN_FREE_MEMORY_PERCENT)
        self.archive = Archive(paths)
        self.journal = RunJournal(paths)
        self.history = History(paths.history_file)
        self.state_file = StateFile(paths.state_file)
        self.slots = SlotTable(paths.slots_file)
        self.active: dict[str, ActiveRun] = {}
        self._unarchived: list[tuple[Run, dict[str, Any]]] = []
        self.counters: Counter[str] = Counter()
        self.started_at = clock()
        self.stop_request: StopMode | None = None
        self.stop_mode: StopMode | None = None
        self._command = settings.command_words
        self._backoff = scheduler.Backoff(settings.RETRY_BACKOFF, settings.RETRY_BACKOFF_MAX)
        self.agent_program = settings.agent_program
        environment = {**dotenv_extras(paths), **os.environ}
        self._base_env = {key: value for key, value in environment.items()
                          if key not in DAEMON_ONLY_VARIABLES}
        self._next_sweep = 0.0
        self._state_dirty = True
        self._next_state_save = 0.0
        self._next_slots_save = 0.0
        self._next_save_retry = 0.0
        self._periodic: list[Periodic] = []

    def every(self, interval: float, action: Callable[[float], None]) -> None:
        """Run ``action(now)`` every ``interval`` seconds, first at start, never on dispatch."""
        self._periodic.append(Periodic(interval, action))

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Restore from disk and take in the triggers already waiting."""
        self.paths.ensure()
        self.slots, problem = SlotTable.load(self.paths.slots_file)
        if problem:
            self.log.error("RECOVERY", msg=problem)
        if self.state_file.load() is None and self.paths.state_file.exists():
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
        self._archive_finished(now)
        self._persist(now, force=True)

    def run(self, on_ready: Callable[[], None]) -> None:
        self.prepare()
        on_ready()
        while not self.finished:
            self.step()
        self.journal.close()

    @property
    def finished(self) -> bool:
        return self.stop_mode is not None and (self.stop_mode is StopMode.HANDOFF
                                               or not self.active)

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
        self._serve_requests(now)
        self._take_in(now)
        self._enforce(now)
        if now >= self._next_sweep:
            self._sweep(now)
        self._dispatch(now)
        self._archive_finished(now)
        self._run_periodic(now)
        self._persist(now, force=self.finished)

    def _next_wakeup(self, now: float) -> float | None:
        if (self.stop_request and self.stop_mode is None) or not self.requests.empty():
            return now
        moments = [self._next_sweep, self.reader.next_wakeup(now), self.queue.next_due(),
                   scheduler.next_deadline(self.active.values(), self.settings.AGENT_KILL_GRACE)]
        if self.held_back and len(self.queue):
            moments.append(now + MemoryGauge.INTERVAL)
        moments.extend(task.next_at for task in self._periodic)
        if self.slots.dirty:
            moments.append(max(self._next_slots_save, self._next_save_retry))
        if self._state_dirty:
            moments.append(max(self._next_state_save, self._next_save_retry))
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
        self.counters["invalid"] += 1
        self._state_dirty = True
        self.log.error("INVALID", trigger=name, reason=reason)

    # -- runs --------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        capacity = scheduler.free_capacity(self.settings.concurrency_limit, len(self.active),
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
                self.queue.release(agent)

    def _holding_back(self, now: float) -> bool:
        """MIN_FREE_MEMORY_PERCENT: no new run while memory is short; said once per spell."""
        reason = self._memory.shortage(now)
        if reason != self.held_back:
            self.held_back = reason
            self._state_dirty = True
            if reason:
                self.log.warning("HOLD", msg=f"not starting new runs: {reason}",
                                 queued=len(self.queue))
            else:
                self.log.info("HOLD", msg="memory available again; starting runs")
        return reason is not None

    def _start_run(self, entry: QueuedTrigger, agent: str, now: float) -> bool:
        source = self.paths.triggers / entry.name
        try:
            claimed = move_unique(source, self.paths.running)
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
        earlier = self.attempts.load(entry.name)[0] if entry.not_before else []  # a retry
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
            self._finish(ActiveRun(run), RunExit(ended_at=now, error=str(error)), now)
            return True
        run = replace(run, workdir=workspace.directory)
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
            self._finish(ActiveRun(run), RunExit(ended_at=now, error=f"cannot start: {error}"),
                         now)
            return True
        self.active[run_id] = ActiveRun(run)
        self.slots.mark_busy(run)
        self.counters["spawned"] += 1
        self._state_dirty = True
        return True

    def _on_started(self, event: Started) -> None:
        active = self.active.get(event.run_id)
        if active is None:
            return
        active.agent = event.agent
        run = active.run
        if active.term_sent_at is not None:  # asked to stop before its pid was known
            self.runner.signal(event.agent, signal.SIGTERM)
        self.slots.set_process(run.agent, event.agent)
        self.log.info("SPAWNED", agent=run.agent, ticket=run.ticket, pid=event.agent.pid,
                      run=run.run_id, trigger=run.trigger_name)

    def _on_exited(self, event: Exited, now: float) -> None:
        active = self.active.get(event.run_id)
        if active is not None:
            self._finish(active, event.exit, now)

    def _finish(self, active: ActiveRun, ended: RunExit | None, now: float) -> None:
        run = active.run
        outcome = scheduler.outcome_of(active, ended)
        ended_at = ended.ended_at if ended else now
        if active.stop is not None and active.agent is not None:
            self.runner.signal(active.agent, signal.SIGKILL)  # leftovers in the session
        result = run_result(run, active.agent, outcome, ended_at)
        earlier = self.attempts.load(run.trigger_name)[0] if run.attempt > 1 else []
        attempts = [*earlier, result]
        delay = scheduler.retry_delay(outcome.kind, len(attempts), run.max_retries, self._backoff)
        if delay is None or not self._retry(run, attempts, now + delay, now):
            if len(attempts) > 1:
                result = {**result, "attempts": attempts}
            self._unarchived.append((run, result))
        self.active.pop(run.run_id, None)
        note = self.workspaces.release(run, outcome)
        if note:
            self.log.info("WORKTREE", agent=run.agent, run=run.run_id, msg=note)
        self.slots.mark_idle(run.agent, run, outcome.kind, ended_at)
        self.queue.release(run.agent)
        self.counters[outcome.kind.value] += 1
        self._state_dirty = True
        event = "TIMEOUT" if outcome.kind is OutcomeKind.TIMED_OUT else "FINISH"
        if ended is not None and ended.error is not None:
            say = self.log.error  # the run could not even start
        elif outcome.kind is OutcomeKind.SUCCEEDED:
            say = self.log.info
        else:
            say = self.log.warning
        say(event, agent=run.agent, ticket=run.ticket, outcome=outcome.kind.value,
            exit_code=outcome.exit_code, reason=outcome.reason, run=run.run_id,
            attempt=run.attempt, duration_s=result["duration_s"])

    def _archive_finished(self, now: float) -> None:
        """Archive the runs finished this turn, after the dispatch: the next run of a freed
        agent does not wait for the file work. Until then the trigger stays in ``running/``
        with its exit in the journal, so a crash in between finishes it again."""
        while self._unarchived:
            run, result = self._unarchived.pop(0)
            self._archive(run, result, now)

    def _archive(self, run: Run, result: dict[str, Any], now: float) -> None:
        try:
            archived = self.archive.put(Path(run.trigger_path), run.trigger_name, result, now)
        except OSError as error:
            self.log.error("ERROR", msg="cannot archive finished trigger; it stays in running/ "
                           "until the next start", trigger=run.trigger_name, error=str(error))
            return
        self.journal.done(run.run_id)
        self.attempts.remove(run.trigger_name)
        self._record_history({**result, "archived_as": str(archived)})

    def _record_history(self, record: dict[str, Any]) -> None:
        try:
            self.history.append(record)
        except OSError as error:
            self.log.error("ERROR", msg="cannot append run history", error=str(error))

    def _retry(self, run: Run, attempts: list[dict[str, Any]], not_before: float,
               now: float) -> bool:
        """Queue the trigger again as a new arrival that waits out its backoff."""
        name = run.trigger_name
        try:
            self.attempts.save(name, attempts, not_before)
            back = move_unique(Path(run.trigger_path), self.paths.triggers)
            stamp = int(now * 1e9)
            os.utime(back, ns=(stamp, stamp))  # younger than the work already waiting
            if back.name != name:
                self.attempts.save(back.name, attempts, not_before)
                self.attempts.remove(name)
        except OSError as error:
            self.log.error("ERROR", msg="cannot queue the trigger again; archiving it",
                           trigger=name, error=str(error))
            return False
        self.journal.done(run.run_id)
        self._record_history({**attempts[-1], "retry_at": iso_utc(not_before, precise=True)})
        self.queue.add(QueuedTrigger(back.name, run.target, (-run.priority, stamp, back.name),
                                     not_before))
        self.counters["retried"] += 1
        self.log.warning("RETRY", trigger=back.name, agent=run.target, attempt=run.attempt,
                         of=run.max_retries + 1, retry_at=iso_utc(not_before, precise=True))
        return True

    def _enforce(self, now: float) -> None:
        for decision in scheduler.enforce(self.active.values(), now,
                                          self.settings.AGENT_KILL_GRACE):
            active = self.active[decision.run_id]
            if isinstance(decision, Terminate):
                self.log.warning("TIMEOUT", agent=active.run.agent, run=active.run.run_id,
                                 msg=f"past AGENT_TIMEOUT={active.run.timeout:g}s; "
                                     "sending SIGTERM")
                self._terminate(active, active.stop or decision.reason, now)
            else:
                assert isinstance(decision, Kill)
                active.kill_sent = True
                self.log.warning("TIMEOUT", agent=active.run.agent, run=active.run.run_id,
                                 msg="still running after the grace period; sending SIGKILL")
                self._signal(active, signal.SIGKILL)

    def _terminate(self, active: ActiveRun, reason: StopReason, now: float) -> None:
        """Ask a run to stop (SIGTERM once); ``_enforce`` sends SIGKILL after the grace."""
        active.stop = reason
        if active.term_sent_at is None:
            active.term_sent_at = now
            self._signal(active, signal.SIGTERM)

    def _signal(self, active: ActiveRun, number: int) -> None:
        active.agent = active.agent or self._agent_from_disk(active.run.run_id)
        if active.agent is not None:
            self.runner.signal(active.agent, number)

    def logs_in_use(self) -> list[str]:
        return [active.run.log_path for active in self.active.values()]

    def _agent_from_disk(self, run_id: str) -> ProcessIdentity | None:
        entry = self.journal.read(run_id)
        return entry.agent if entry else None

    def _begin_stop(self, mode: StopMode, now: float) -> None:
        self.stop_mode = mode
        self.on_stopping()
        self.log.info("SHUTDOWN", mode=mode.value, running=len(self.active),
                      queued=len(self.queue),
                      msg="leaving agents running for the next daemon"
                      if mode is StopMode.HANDOFF else "stopping agents")
        if mode is StopMode.STOP:
            for active in self.active.values():
                self._terminate(active, StopReason.SHUTDOWN, now)

    # -- operator requests (from the control socket's thread) ------------------------------

    def submit(self, request: dict[str, Any], reply: Reply) -> None:
        """Thread-safe: queue an operator request; ``reply`` is called from the loop."""
        self.requests.put((request, reply))
        self.runner.wake()

    def _serve_requests(self, now: float) -> None:
        while not self.requests.empty():
            request, reply = self.requests.get_nowait()
            handler = self._handlers.get(str(request.get("op")))
            try:
                answer = handler(request, now) if handler else {
                    "ok": False, "error": f"unknown request {request.get('op')!r}"}
            except KeyError as error:
                answer = {"ok": False, "error": f"the request lacks {error}"}
            except (TypeError, ValueError, OSError) as error:
                answer = {"ok": False, "error": str(error)}
            reply(answer)

    @property
    def _handlers(self) -> dict[str, Callable[[dict[str, Any], float], dict[str, Any]]]:
        return {"pause": lambda request, _now: self._set_pause(request, True),
                "resume": lambda request, _now: self._set_pause(request, False),
                "stop-agent": self._stop_agent, "cancel": self._cancel}

    def _set_pause(self, request: dict[str, Any], paused: bool) -> dict[str, Any]:
        agent = request.get("agent") or None
        (self.queue.pause if paused else self.queue.resume)(agent)
        write_json_atomic(self.paths.paused_file, self.queue.pauses)
        self._state_dirty = True
        self.log.info("PAUSE" if paused else "RESUME", agent=agent or "all",
                      msg="no new runs; running ones carry on" if paused else None)
        return {"ok": True, "paused": self.queue.pauses}

    def _stop_agent(self, request: dict[str, Any], now: float) -> dict[str, Any]:
        agent = request["agent"]
        active = next((a for a in self.active.values() if a.run.agent == agent), None)
        if active is None:
            return {"ok": False, "error": f"agent {agent} has no run going"}
        self._terminate(active, StopReason.OPERATOR, now)
        self.log.warning("STOP", agent=agent, run=active.run.run_id, msg="stopped by the operator")
        return {"ok": True, "run_id": active.run.run_id, "trigger": active.run.trigger_name}

    def _cancel(self, request: dict[str, Any], now: float) -> dict[str, Any]:
        name = Path(str(request["trigger"])).name
        if self.queue.remove(name) is None:
            return {"ok": False, "error": f"{name} is not waiting in the queue"}
        result = {"trigger": name, "outcome": OutcomeKind.CANCELLED.value,
                  "reason": "cancelled by the operator", "exit_code": None}
        archived = self.archive.put(self.paths.triggers / name, name, result, now)
        self.attempts.remove(name)
        self.counters[OutcomeKind.CANCELLED.value] += 1
        self._state_dirty = True
        self.log.warning("CANCEL", trigger=name, archived=str(archived))
        return {"ok": True, "archived": str(archived)}

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
        self._state_dirty = True

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
                              self.paths.triggers)
        for note in result.notes:
            self.log.warning("RECOVERY", msg=note)
        for name in result.requeued:
            self.log.warning("RECOVERY", msg="trigger was claimed but never started; queued again",
                             trigger=name)
        for active in result.adopted:
            run = active.run
            self.active[run.run_id] = active
            self.slots.mark_busy(run, active.agent)
            self.queue.hold(run.agent)
            self.log.warning("RECOVERY", msg="adopted a run that is still going", agent=run.agent,
                             run=run.run_id, pid=active.agent.pid if active.agent else None)
        for run, ended in result.to_finish:
            self.log.warning("RECOVERY", msg="finishing a run that ended while no daemon ran",
                             agent=run.agent, run=run.run_id,
                             exit_code=ended.exit_code if ended else None)
            self._finish(ActiveRun(run), ended, self.clock())
        for agent, slot in list(self.slots):
            if slot.run is not None and slot.run.run_id not in self.active:
                self.slots.mark_idle(agent, None, None, self.clock())

    def _persist(self, now: float, force: bool = False) -> None:
        """Save what changed, batched: slots at most every SLOTS_SAVE_INTERVAL, state every
        STATE_SAVE_INTERVAL. Neither is needed for recovery (the run journals are), so a
        backlog does not pay two file replacements per trigger."""
        if now < self._next_save_retry and not force:
            return
        try:
            if self.slots.dirty and (force or now >= self._next_slots_save):
                self.slots.save()
                self._next_slots_save = now + SLOTS_SAVE_INTERVAL
            if self._state_dirty and (force or now >= self._next_state_save):
                self.state_file.save(self.state(now))
                self._state_dirty = False
                self._next_state_save = now + STATE_SAVE_INTERVAL
        except OSError as error:
            self._next_save_retry = now + SAVE_RETRY_INTERVAL
            self.log.error("ERROR", msg="cannot save state; keeping the last good file and "
                           "trying again", error=str(error))

    def state(self, now: float) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_at": iso_utc(self.started_at),
            "updated_at": iso_utc(now),
            "mode": "parallel" if self.settings.PARALLEL_DAEMON else "sequential",
            "max_concurrent": self.settings.concurrency_limit,
            "agent_timeout": self.settings.AGENT_TIMEOUT,
            "agent_program": self.agent_program,
            "running": len(self.active),
            "queued": len(self.queue),
            "stopping": self.stop_mode.value if self.stop_mode else None,
            "paused": self.queue.pauses,
            "held_back": self.held_back,
            "pools": {pool: list(members) for pool, members in self.settings.pools.items()},
            "counters": dict(sorted(self.counters.items())),
        }
