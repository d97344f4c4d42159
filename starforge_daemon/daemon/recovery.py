"""Start-time rules for what an earlier daemon left in flight.

The runner has connected to the keeper first: the keeper acts on every request it was sent
before it greets a new daemon, so a run with no ``started`` line was never spawned and never
will be. For each run not done in the journals in ``.claude/daemon/runs``:

* its trigger is already archived          -> it is marked done;
* it has an ``exit`` line                  -> finished with that real exit status;
* it has no ``started`` line               -> the trigger goes back to the queue (nothing ran);
* the keeper holds it, or its agent lives  -> adopted: followed until it ends, timeout unchanged;
* none of that                             -> finished as lost.

A trigger in ``running/`` without any run in the journals either waits there for another attempt
(it has an attempts record: it goes back into the queue from ``running/`` with that record's
``not_before``), or was claimed but never started (it is moved back into the trigger folder).
Nothing here signals a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from starforge_daemon.core.ledger import Running
from starforge_daemon.core.models import Run, RunExit
from starforge_daemon.runtime.local.client import Runner
from starforge_daemon.store.atomic import move_unique
from starforge_daemon.store.records import Attempts, RunJournal


@dataclass
class RecoveryResult:
    adopted: list[Running] = field(default_factory=list)
    to_finish: list[tuple[Run, RunExit | None]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    retries: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recover_runs(journal: RunJournal, runner: Runner, running: Path, queue_folder: Path,
                 attempts: Attempts) -> RecoveryResult:
    result = RecoveryResult()
    claimed: set[str] = set()
    for entry in journal.entries():
        run_id = entry.run.run_id
        trigger = Path(entry.run.trigger_path)
        if not trigger.exists():
            result.notes.append(f"run {run_id}: trigger already archived; cleaned up")
            journal.done(run_id)
            continue
        claimed.add(trigger.name)
        if entry.ended is not None:
            result.to_finish.append((entry.run, entry.ended))
        elif entry.agent is None:
            result.requeued.append(move_unique(trigger, queue_folder).name)
            journal.done(run_id)
        elif runner.adopt(run_id, entry.agent):
            result.adopted.append(Running(entry.run, entry.agent))
        else:
            latest = journal.read(run_id)
            result.to_finish.append((entry.run, latest.ended if latest else None))
    for path in sorted(running.iterdir()):
        if path.name in claimed:
            continue
        if attempts.not_before(path.name):
            result.retries.append(path)
        else:
            result.requeued.append(move_unique(path, queue_folder).name)
    journal.prune()
    return result
