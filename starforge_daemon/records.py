"""What the daemon keeps on disk: archived triggers with their results, per-run files of the
runs in flight, the run history and the daemon's state file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import ProjectPaths
from .files import (
    candidate_names,
    rename_noreplace,
    write_json_atomic,
    write_new,
)
from .models import (
    ArchiveFolder,
    Outcome,
    OutcomeKind,
    ProcessIdentity,
    Run,
    RunExit,
    folder_for,
    iso_utc,
)

RESULT_SUFFIX = ".result.json"


def result_path(archived: Path) -> Path:
    return archived.with_name(archived.name + RESULT_SUFFIX)


class Archive:
    """Moves a trigger into its archive folder, its result file written first beside it.

    The result is written before the rename, so an archived trigger always has its reason on
    disk; a crash between the two leaves the trigger where it was, to be archived again.
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._paths = paths

    def folder(self, which: ArchiveFolder) -> Path:
        return (self._paths.processed / which.value).resolve()

    def put(self, source: Path, name: str, result: dict[str, Any], now: float) -> Path:
        """Archive ``source`` (named ``name`` in the queue) with ``result`` beside it."""
        record = {**result, "archived_at": iso_utc(now, precise=True)}
        folder = self.folder(folder_for(OutcomeKind(record["outcome"])))
        for candidate in candidate_names(name):
            target = folder / candidate
            if os.path.lexists(target):
                continue
            sidecar = result_path(target)  # one left by a crash mid-archive is replaced
            write_new(sidecar, json.dumps(record, indent=2).encode() + b"\n")
            try:
                rename_noreplace(source, target)
            except BaseException:
                sidecar.unlink(missing_ok=True)
                raise
            return target
        raise FileExistsError(f"no free name for {name} in {folder}")


def run_result(run: Run, agent: ProcessIdentity | None, outcome: Outcome,
               ended_at: float) -> dict[str, Any]:
    """What is recorded about a finished run: in its result file and in the history."""
    return {
        "trigger": run.trigger_name, "outcome": outcome.kind.value, "reason": outcome.reason,
        "exit_code": outcome.exit_code, "run_id": run.run_id, "agent": run.agent,
        "pool": run.pool, "attempt": run.attempt,
        "ticket": run.ticket, "action": run.action, "from_agent": run.from_agent,
        "pid": agent.pid if agent else None,
        "started_at": iso_utc(run.started_at, precise=True),
        "ended_at": iso_utc(ended_at, precise=True),
        "duration_s": round(max(0.0, ended_at - run.started_at), 3),
        "log": run.log_path,
    }


@dataclass(frozen=True)
class JournalEntry:
    """One run's journal as read back: the run, its agent once spawned, its end once over."""

    run: Run
    agent: ProcessIdentity | None = None
    ended: RunExit | None = None


class RunJournal:
    """One append-only file per run in flight, ``.claude/daemon/runs/<run>.jsonl``.

    The daemon writes the run before asking for it; the keeper appends ``started`` once the
    agent is spawned and ``exit`` once it is over. A daemon that comes later reads it back.
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.runs

    def path(self, run_id: str) -> Path:
        return self._folder / f"{run_id}.jsonl"

    def create(self, run: Run) -> None:
        line = json.dumps({"run": run.model_dump()}, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.path(run.run_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read(self, run_id: str) -> JournalEntry | None:
        """None when the file is missing or its first line is not a whole run."""
        try:
            lines = self.path(run_id).read_bytes().splitlines()
        except OSError:
            return None
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        try:
            run = Run.model_validate(records[0]["run"])
        except (IndexError, KeyError, TypeError, ValueError):
            return None
        entry = JournalEntry(run)
        for record in records[1:]:
            if isinstance(record, dict) and "started" in record:
                entry = replace(entry, agent=ProcessIdentity.model_validate(record["started"]))
            elif isinstance(record, dict) and "exit" in record:
                entry = replace(entry, ended=RunExit.model_validate(record["exit"]))
        return entry

    def run_ids(self) -> list[str]:
        return sorted(path.stem for path in self._folder.glob("*.jsonl"))

    def remove(self, run_id: str) -> None:
        self.path(run_id).unlink(missing_ok=True)


class Attempts:
    """Earlier attempts of triggers that are being retried, ``.claude/daemon/attempts/<name>.json``.

    Kept apart from the trigger so the trigger file stays what its writer wrote; the record says
    when the next attempt may start and goes into the result once the trigger is archived.
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.attempts

    def _path(self, name: str) -> Path:
        return self._folder / f"{name}.json"

    def load(self, name: str) -> tuple[list[dict[str, Any]], float]:
        """The attempts so far and the earliest start of the next; none and 0 when fresh."""
        try:
            record = json.loads(self._path(name).read_bytes())
            return list(record["attempts"]), float(record["not_before"])
        except (OSError, ValueError, KeyError, TypeError):
            return [], 0.0

    def not_before(self, name: str) -> float:
        return self.load(name)[1]

    def save(self, name: str, attempts: list[dict[str, Any]], not_before: float) -> None:
        write_json_atomic(self._path(name), {"attempts": attempts, "not_before": not_before})

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class History:
    """Append-only run history, one JSON object per line (``jq`` reads it as a stream)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


class StateFile:
    """``daemon-state.json``: the daemon's pid, start, mode and counters, replaced whole."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def save(self, state: dict[str, Any]) -> None:
        write_json_atomic(self._path, state)

    def load(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None
