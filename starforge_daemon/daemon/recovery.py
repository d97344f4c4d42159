"""Start-time rules for what an earlier daemon left in flight.

The runner has connected to the keeper first: the keeper acts on every request it was sent
before it greets a new daemon, so a run with no ``started`` line was never spawned and never
will be. For each run not done in the journals in ``.claude/daemon/runs``:

* its trigger is already archived          -> it is marked done;
* it has an ``exit`` line                  -> finished with that real exit status;
* it has no ``started`` line               -> the trigger goes back to the queue (nothing ran);
* the runner still follows it (reconcile)  -> adopted: followed until it ends, timeout unchanged;
* none of that                             -> finished as lost.

A trigger in ``running/`` without any run in the journals either waits there for another attempt
(it has an attempts record: it goes back into the queue from ``running/`` with that record's
``not_before``), or was claimed but never started (it is moved back into the trigger folder).
Nothing here signals a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from starforge_daemon.core.events import Adopted, Publisher, Recovered, RecoveryNote, Requeued
from starforge_daemon.core.ledger import Launching, Ledger, Running
from starforge_daemon.core.models import ProcessIdentity, QueuedTrigger, Run, RunExit, assigned_id
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.daemon.finisher import Finisher
from starforge_daemon.daemon.starter import Starter
from starforge_daemon.intake.triggers import Accepted, Rejected, examine
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.atomic import move_unique
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.journal import RunJournal


@dataclass
class RecoveryResult:
    adopted: list[Running] = field(default_factory=list)
    to_finish: list[tuple[Run, ProcessIdentity | None, RunExit | None]] = field(
        default_factory=list)  # with the agent the journal knew, for the result's pid
    requeued: list[str] = field(default_factory=list)
    retries: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recover_runs(journal: RunJournal, runner: Runner, running: Path, queue_folder: Path,
                 attempts: Attempts) -> RecoveryResult:
    result = RecoveryResult()
    claimed: set[str] = set()
    entries = journal.entries()
    followed = runner.reconcile({entry.run.run_id: entry.agent for entry in entries
                                 if entry.ended is None and entry.agent is not None
                                 and Path(entry.run.trigger_path).exists()})
    for entry in entries:
        run_id = entry.run.run_id
        trigger = Path(entry.run.trigger_path)
        if not trigger.exists():
            result.notes.append(f"run {run_id}: trigger already archived; cleaned up")
            journal.done(run_id)
            continue
        claimed.add(trigger.name)
        if entry.ended is not None:
            result.to_finish.append((entry.run, entry.agent, entry.ended))
        elif entry.agent is None:
            result.requeued.append(move_unique(trigger, queue_folder).name)
            journal.done(run_id)
        elif run_id in followed:
            result.adopted.append(Running(entry.run, entry.agent))
        else:
            latest = journal.read(run_id)
            result.to_finish.append((entry.run, entry.agent, latest.ended if latest else None))
    for path in sorted(running.iterdir()):
        if path.name in claimed:
            continue
        if attempts.not_before(path.name):
            result.retries.append(path)
        else:
            result.requeued.append(move_unique(path, queue_folder).name)
    journal.prune()
    return result


def take_over(found: RecoveryResult, *, ledger: Ledger, queue: TriggerQueue, starter: Starter,
              finisher: Finisher, events: Publisher, now: float) -> None:
    """Apply what ``recover_runs`` found: adopt, requeue, finish."""
    for note in found.notes:
        events.publish(RecoveryNote(note))
    for path in found.retries:
        _requeue_retry(path, queue, starter, now)
    for name in found.requeued:
        events.publish(Requeued(name))
    for state in found.adopted:
        ledger.add(state)
        events.publish(Adopted(state.run.agent, state.run.run_id, state.handle.pid))
    for run, agent, ended in found.to_finish:
        events.publish(Recovered(run.agent, run.run_id, ended.exit_code if ended else None))
        finisher.finish(Launching(run) if agent is None else Running(run, agent), ended, now)


def _requeue_retry(path: Path, queue: TriggerQueue, starter: Starter, now: float) -> None:
    """A retry left waiting in ``running/`` by an earlier daemon goes back into the queue, with
    the id its trigger had (the name may have changed when it was claimed)."""
    settings = starter.settings
    record = starter.stores.attempts.load(path.name)
    trigger_id = next((attempt.id for attempt in reversed(record.attempts) if attempt.id),
                      assigned_id(path.name))
    verdict = examine(path, now, max_bytes=settings.MAX_TRIGGER_BYTES,
                      allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS, settle_seconds=0)
    if isinstance(verdict, Accepted):
        queue.add(replace(verdict.entry, not_before=record.not_before, claimed=True,
                          id=trigger_id, after=()))
    elif isinstance(verdict, Rejected):
        entry = QueuedTrigger(path.name, "", (0, 0, path.name), claimed=True, id=trigger_id)
        starter.reject(path, path.name, verdict.reason, now, entry)
