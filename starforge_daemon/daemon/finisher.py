"""What happens once a run is over: its outcome and result, another attempt or the archive,
the run history, and the agent freed for its next trigger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starforge_daemon.core import scheduler
from starforge_daemon.core.events import (
    Archived,
    Drained,
    Finished,
    Problem,
    Publisher,
    Retried,
    WorkspaceReleased,
)
from starforge_daemon.core.holds import Holds
from starforge_daemon.core.ledger import Ledger, RunState
from starforge_daemon.core.models import OutcomeKind, QueuedTrigger, Run, RunExit, iso_utc
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.core.sessions import TicketSessions
from starforge_daemon.core.streams import Summary
from starforge_daemon.daemon.archivist import Archivist
from starforge_daemon.daemon.persistence import Persistence, Stores
from starforge_daemon.store.attempts import AttemptsRecord
from starforge_daemon.store.results import RunResult
from starforge_daemon.workspaces.base import Workspaces


def files_refused(holds: Holds, events: Publisher, error: OSError, now: float, what: str) -> None:
    """A write failed: the hold that keeps new runs back until the project's files take writes
    again, said once per spell."""
    if holds.disk_refused(error.strerror or str(error), now):
        events.publish(Problem(msg=f"the project's files refuse writes ({what}); no new run "
                               "starts until they take them again", error=str(error)))


class Finisher:
    def __init__(self, *, queue: TriggerQueue, ledger: Ledger, saved: Persistence, stores: Stores,
                 workspaces: Workspaces, backoff: scheduler.Backoff, events: Publisher,
                 dogs: scheduler.Watchdogs, holds: Holds,
                 sessions: TicketSessions | None, archivist: Archivist) -> None:
        self.queue = queue
        self.ledger = ledger
        self.saved = saved
        self.archivist = archivist
        self.attempts = stores.attempts
        self.journal = stores.journal
        self.workspaces = workspaces
        self.backoff = backoff
        self.events = events
        self.dogs = dogs
        self.holds = holds
        self.sessions = sessions
        self._unarchived: list[tuple[Run, dict[str, Any]]] = []
        self._untidy: list[Run] = []  # archived; journal entry and attempts record still open
        self._drain_due = False  # a run ended since the daemon was last idle

    def finish(self, state: RunState, ended: RunExit | None, now: float) -> None:
        """Record how the run ended, free its agent, and requeue or (later) archive it."""
        run = state.run
        outcome = scheduler.outcome_of(state, ended, self.dogs)
        ended_at = ended.ended_at if ended else now
        result = RunResult.of(run, state.handle, outcome, ended_at, ended)
        stream = ended.stream if ended else None
        if stream is not None:
            self.holds.spent(stream.cost_usd, ended_at)
            if self.sessions is not None:
                self.sessions.ended(run.ticket, stream.session_id)
        held_until = self._hold(stream, now) if outcome.kind is OutcomeKind.RATE_LIMITED else None
        earlier = [attempt for attempt in self.attempts.load(run.trigger_name).attempts
                   if attempt.run_id != run.run_id]  # saved before a crash: once only
        attempts = [*earlier, result]
        decision = scheduler.after_run(run, outcome, len(attempts), self.backoff, now,
                                       held_until)
        archived = isinstance(decision, scheduler.Archive) or not self._retry(
            run, attempts if decision.counted else earlier, result, decision.not_before, now)
        if archived:
            record = result.to_dict()
            if len(attempts) > 1:
                record["attempts"] = [attempt.to_dict() for attempt in attempts]
            self._unarchived.append((run, record))
        self.ledger.remove(run.run_id)
        note = self.workspaces.release(run, outcome)
        if note:
            self.events.publish(WorkspaceReleased(run.agent, run.run_id, note))
        self.saved.slots.ended(run, outcome.kind, ended_at)
        self.queue.offer(run.agent)
        self.events.publish(Finished(
            run.agent, run.ticket, outcome.kind.value, outcome.exit_code, outcome.reason,
            run.run_id, run.attempt, result.duration_s,
            start_failed=ended is not None and ended.error is not None,
            trigger=run.trigger_name, model=result.model, cost_usd=result.cost_usd,
            tokens_in=result.tokens_in, tokens_out=result.tokens_out, log=run.log_path,
            retry_at=None if archived else iso_utc(decision.not_before, precise=True),
            dead_letter=archived and outcome.kind is not OutcomeKind.SUCCEEDED
            and 0 < run.max_retries < run.attempt))
        self._drain_due = True

    def archive_finished(self, now: float, starting: int = 0) -> None:
        """Archive the runs finished this turn, after the dispatch: the next run of a freed
        agent does not wait for the file work (``starting``: runs handed over, not begun).
        Until then the trigger stays in ``running/`` with its exit in the journal, so a crash
        in between finishes it again. While the project's files refuse writes they wait, and
        are tried again with the hold's probes."""
        if self.holds.disk_error is not None and not self.holds.probe_due(now):
            return
        while self._unarchived:
            run, result = self._unarchived[0]
            if not self._archive(run, result, now):
                return
            self._unarchived.pop(0)
        if self._drain_due and not (self.ledger or starting or len(self.queue)):
            self._drain_due = False
            self.events.publish(Drained())
        while self._untidy:
            if not self._tidy(self._untidy[0], now):
                return
            self._untidy.pop(0)

    def _tidy(self, run: Run, now: float) -> bool:
        """Close an archived run's journal entry (its prompt file goes with it) and attempts
        record; False when the files refused."""
        try:
            self.journal.done(run.run_id)
            self.attempts.remove(run.trigger_name)
        except OSError as error:
            self._refused(error, now, "an archived run's journal entry waits")
            return False
        return True

    def _archive(self, run: Run, result: dict[str, Any], now: float) -> bool:
        """Archive one run's trigger with its result; False when the files refused."""
        try:
            archived = self.archivist.put(run.trigger_path, run.trigger_name, result, now)
        except FileNotFoundError as error:
            if Path(run.trigger_path).exists():
                self._refused(error, now, "a finished trigger waits in running/")
                return False
            # someone took it out of running/: nothing to move
            self.events.publish(Problem(msg="a finished trigger was gone from running/; its "
                                        "result is in the run history only",
                                        trigger=run.trigger_name, error=str(error)))
            if not self._tidy(run, now):
                self._untidy.append(run)
            self.archivist.lost_file(result)
            return True
        except OSError as error:
            self._refused(error, now, "a finished trigger waits in running/")
            return False
        self.holds.disk_accepted()
        if self._untidy or not self._tidy(run, now):
            self._untidy.append(run)  # after those waiting already, in order
        self.events.publish(Archived(run.agent, run.run_id, result["outcome"], archived))
        return True

    def _refused(self, error: OSError, now: float, what: str) -> None:
        files_refused(self.holds, self.events, error, now, what)

    def _hold(self, stream: Summary | None, now: float) -> float:
        """New runs wait for the rate limit this run met; it waits with them."""
        return self.holds.rate_limited(stream.rate_limit_until if stream else None, now)

    def _retry(self, run: Run, attempts: list[RunResult], result: RunResult, not_before: float,
               now: float) -> bool:
        """Queue the trigger again where it is, in ``running/``, to wait out its backoff behind
        the work already waiting; its attempts record is what recovery finds it by."""
        path = Path(run.trigger_path)
        name = path.name
        stamp = int(now * 1e9)
        try:
            self.attempts.save(name, AttemptsRecord(attempts, not_before))
            os.utime(path, ns=(stamp, stamp))  # younger than the work already waiting
        except OSError as error:
            self.events.publish(Problem(msg="cannot queue the trigger again; archiving it",
                                        trigger=name, error=str(error)))
            return False
        self.journal.done(run.run_id)
        self.archivist.record({**result.to_dict(), "retry_at": iso_utc(not_before, precise=True)})
        self.queue.add(QueuedTrigger(name, run.target, (-run.priority, stamp, name), not_before,
                                     claimed=True, id=run.trigger_ident,
                                     dedupe_key=run.dedupe_key))
        self.events.publish(Retried(name, run.target, run.attempt, run.max_retries + 1,
                                    iso_utc(not_before, precise=True)))
        return True
