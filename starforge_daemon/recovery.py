"""Start-time rules for what an earlier daemon left in flight.

For each run recorded in ``.claude/daemon/runs``:

* its trigger is already archived          -> only its run files are removed;
* its monitor recorded an exit             -> finished with that real exit status;
* its monitor never started                -> the trigger goes back to the queue (nothing ran);
* its monitor or agent is still alive      -> adopted: watched until it ends, timeout unchanged;
* none of that                             -> finished as lost.

A trigger in ``running/`` without any run record was claimed but never started: it is queued
again. Nothing here signals a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .files import move_unique
from .models import Run, RunExit
from .records import RunFiles
from .runner import Runner
from .scheduler import ActiveRun


@dataclass
class RecoveryResult:
    adopted: list[ActiveRun] = field(default_factory=list)
    to_finish: list[tuple[Run, RunExit | None]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recover_runs(run_files: RunFiles, runner: Runner, running: Path,
                 queue_folder: Path) -> RecoveryResult:
    result = RecoveryResult()
    claimed: set[str] = set()
    for run_id in run_files.run_ids():
        run = run_files.read_run(run_id)
        if run is None:
            result.notes.append(f"run record {run_id} is unreadable; removed")
            run_files.remove(run_id)
            continue
        trigger = Path(run.trigger_path)
        if not trigger.exists():
            result.notes.append(f"run {run_id}: trigger already archived; cleaned up")
            run_files.remove(run_id)
            continue
        claimed.add(trigger.name)
        ended = run_files.read_exit(run_id)
        started = run_files.read_started(run_id)
        if ended is not None:
            result.to_finish.append((run, ended))
        elif started is None:
            result.requeued.append(move_unique(trigger, queue_folder).name)
            run_files.remove(run_id)
        elif runner.adopt(run_id, started, run_files.exit_path(run_id)):
            result.adopted.append(ActiveRun(run, agent=started.agent))
        else:
            result.to_finish.append((run, run_files.read_exit(run_id)))
    for path in sorted(running.iterdir()):
        if path.name not in claimed:
            result.requeued.append(move_unique(path, queue_folder).name)
    return result
