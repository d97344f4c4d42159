"""Start-time rules for what an earlier daemon left in flight.

The order of a start is: the trigger is claimed (renamed into ``running/``), the daemon appends
the run's ``run`` line to a journal in ``.claude/daemon/runs``, asks the keeper for the run, and
the keeper appends ``spawning``, spawns, and appends ``started``. The runner has connected to
the keeper first: the keeper acts on every request it was sent before it greets a new daemon,
and lists the runs it holds. At most once is the promise: a trigger is queued again only when
the evidence proves nothing ran. For each run not done in the journals:

* its trigger is already archived          -> it is marked done;
* it has an ``exit`` line                  -> finished with that real exit status;
* the runner follows it (reconcile: the keeper holds it, its agent lives, or it is found by its
  run id after a keeper died while spawning it)                -> adopted, timeout unchanged;
* the runner's reconcile journalled its end (the keeper's reaper) -> finished with that status;
* it has a ``started`` line                -> finished as lost: it ran, no process knows its end;
* no keeper line, or the reaper's ``unspawned``, in a whole journal -> queued again (nothing ran);
* a ``spawning`` line only, or no keeper line in a damaged journal (a line torn or junk)
                                           -> archived to ``failed/``, "unknown: may have run".

A trigger in ``running/`` without any run in the journals either waits there for another attempt
(it has an attempts record: it goes back into the queue from ``running/`` with that record's
``not_before``), or was claimed and never journalled: queued again when every journal reads
whole and the keeper holds no run they do not name, else archived as "unknown: may have run"
(its ``run`` line may be the one lost). ``starforge retry`` runs such a trigger again.
Nothing here signals a process (the runner's reconcile stops the keeper's runs that no journal
names).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from starforge_daemon.core.events import (
    Adopted,
    MayHaveRun,
    Problem,
    Publisher,
    Recovered,
    RecoveryNote,
    Requeued,
)
from starforge_daemon.core.ledger import Launching, Ledger, Running
from starforge_daemon.core.models import (
    Outcome,
    OutcomeKind,
    ProcessIdentity,
    QueuedTrigger,
    Run,
    RunExit,
    assigned_id,
)
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.daemon.finisher import Finisher
from starforge_daemon.daemon.starter import Starter
from starforge_daemon.intake.triggers import Accepted, Rejected, examine
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.atomic import move_unique
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.journal import JournalEntry, RunJournal
from starforge_daemon.store.results import NoRun, RunResult

UNKNOWN = "unknown: may have run"  # the start of the reason of a trigger archived unsure


@dataclass(frozen=True)
class Uncertain:
    """A trigger whose run may have started: archived, never run again unasked."""

    path: Path
    reason: str
    run: Run | None = None


@dataclass
class RecoveryResult:
    adopted: list[Running] = field(default_factory=list)
    to_finish: list[tuple[Run, ProcessIdentity | None, RunExit | None]] = field(
        default_factory=list)  # with the agent the journal knew, for the result's pid
    requeued: list[str] = field(default_factory=list)
    retries: list[Path] = field(default_factory=list)
    uncertain: list[Uncertain] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recover_runs(journal: RunJournal, runner: Runner, running: Path, queue_folder: Path,
                 attempts: Attempts, now: float) -> RecoveryResult:
    result = RecoveryResult()
    claimed: set[str] = set()
    entries = journal.entries()
    found = runner.reconcile({entry.run.run_id: entry.agent for entry in entries
                              if entry.ended is None and Path(entry.run.trigger_path).exists()})
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
        elif run_id in found.followed:
            agent = found.followed[run_id]
            result.adopted.append(Running(entry.run.begun_by(_wall_clock(agent.start)), agent))
        else:
            _not_followed(journal.read(run_id) or entry, entry.path in journal.damaged,
                          journal, queue_folder, result)
    if found.unnamed:
        result.notes.append(f"stopped {len(found.unnamed)} run(s) the keeper held that no "
                            f"journal names: {', '.join(found.unnamed)}")
    evidence = _silence_proves_nothing(journal.damaged, len(found.unnamed))
    for path in sorted(running.iterdir()):
        if path.name in claimed:
            continue
        not_before = attempts.not_before(path.name)
        if not_before and (not evidence or not_before > now):  # its next try cannot have begun
            result.retries.append(path)
        elif evidence:
            result.uncertain.append(Uncertain(
                path, f"{UNKNOWN}: claimed, and the run journals cannot tell whether its run "
                      f"started ({evidence})"))
        else:
            result.requeued.append(move_unique(path, queue_folder).name)
    journal.prune()
    return result


def _not_followed(entry: JournalEntry, damaged: bool, journal: RunJournal, queue_folder: Path,
                  result: RecoveryResult) -> None:
    """A run nobody follows: over (its end as journalled, or lost once it had started), never
    spawned (queued again), or neither provably."""
    trigger = Path(entry.run.trigger_path)
    if entry.ended is not None or entry.agent is not None:
        result.to_finish.append((entry.run, entry.agent, entry.ended))
    elif entry.spawning:
        result.uncertain.append(Uncertain(
            trigger, f"{UNKNOWN}: the keeper began its spawn and no process can tell whether "
                     "the agent started", entry.run))
    elif damaged:
        result.uncertain.append(Uncertain(
            trigger, f"{UNKNOWN}: its journal {entry.path.name} has a damaged line, which may "
                     "have been its start", entry.run))
    else:
        result.requeued.append(move_unique(trigger, queue_folder).name)
        journal.done(entry.run.run_id)


def _silence_proves_nothing(damaged: set[Path], unnamed: int) -> str | None:
    """Why a trigger in ``running/`` with no run in the journals may still have run, if so."""
    if damaged:
        return f"damaged lines in {', '.join(sorted(path.name for path in damaged))}"
    if unnamed:
        return f"the keeper held {unnamed} run(s) no journal names"
    return None


def take_over(found: RecoveryResult, *, ledger: Ledger, queue: TriggerQueue, starter: Starter,
              finisher: Finisher, events: Publisher, now: float) -> None:
    """Apply what ``recover_runs`` found: adopt, requeue, finish, archive the uncertain."""
    for note in found.notes:
        events.publish(RecoveryNote(note))
    for path in found.retries:
        _requeue_retry(path, queue, starter, now)
    for name in found.requeued:
        events.publish(Requeued(name))
    for uncertain in found.uncertain:
        _archive_uncertain(uncertain, starter, finisher, events, now)
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


def _archive_uncertain(uncertain: Uncertain, starter: Starter, finisher: Finisher,
                       events: Publisher, now: float) -> None:
    """To ``failed/`` with the reason, not run again: the operator's ``retry`` decides."""
    path, run = uncertain.path, uncertain.run
    outcome = Outcome(OutcomeKind.FAILED, uncertain.reason)
    if run is not None:
        name, record = run.trigger_name, RunResult.of(run, None, outcome, now).to_dict()
    else:
        verdict = examine(path, now, max_bytes=starter.settings.MAX_TRIGGER_BYTES,
                          allow_foreign=starter.settings.ALLOW_FOREIGN_TRIGGERS,
                          settle_seconds=0)
        trigger_id = verdict.entry.id if isinstance(verdict, Accepted) else assigned_id(path.name)
        name, record = path.name, NoRun(path.name, outcome.kind, outcome.reason,
                                        trigger_id).to_dict()
    try:
        finisher.archivist.put(path, name, record, now)
        starter.stores.attempts.remove(name)
        if run is not None:
            starter.stores.journal.done(run.run_id)
    except OSError as error:  # it stays in running/, judged again at the next start
        events.publish(Problem(msg="cannot archive a trigger whose run may have started",
                               trigger=name, error=str(error)))
        return
    events.publish(MayHaveRun(name, uncertain.reason, run.run_id if run else None))


def _wall_clock(start: float) -> float:
    """A process's ``start`` (seconds since boot) as a wall-clock time, as the clock reads now."""
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - start)
