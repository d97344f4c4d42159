"""What the daemon keeps on disk: archived triggers with their results, per-run files of the
runs in flight, the run history and the daemon's state file."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import (
    ArchiveFolder,
    Outcome,
    OutcomeKind,
    ProcessIdentity,
    Run,
    RunExit,
    folder_for,
    iso_utc,
)
from starforge_daemon.store.atomic import (
    append_json_line,
    candidate_names,
    rename_noreplace,
    write_json_atomic,
    write_new,
)
from starforge_daemon.store.paths import ProjectPaths

RESULT_SUFFIX = ".result.json"


def result_path(archived: Path) -> Path:
    return archived.with_name(archived.name + RESULT_SUFFIX)


class Archive:
    """Moves a trigger into its archive folder, its result file written first beside it.

    The result is written before the rename, so an archived trigger always has its reason on
    disk; a crash between the two leaves the trigger where it was, to be archived again.
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folders = {which: (paths.processed / which.value).resolve() for which in ArchiveFolder}

    def folder(self, which: ArchiveFolder) -> Path:
        return self._folders[which]

    def put(self, source: Path, name: str, result: dict[str, Any], now: float) -> Path:
        """Archive ``source`` (named ``name`` in the queue) with ``result`` beside it."""
        record = {**result, "archived_at": iso_utc(now, precise=True)}
        folder = self.folder(folder_for(OutcomeKind(record["outcome"])))
        for candidate in candidate_names(name):
            target = folder / candidate
            if os.path.lexists(target):
                continue
            sidecar = result_path(target)  # one left by a crash mid-archive is replaced
            write_new(sidecar, json.dumps(record).encode() + b"\n")
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
    """One run as its journal tells it: the run, its agent once spawned, its end once over."""

    run: Run
    path: Path
    agent: ProcessIdentity | None = None
    ended: RunExit | None = None


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict) and isinstance(record.get("run_id"), str):
            yield record


def _fold(path: Path, records: Iterable[dict[str, Any]]) -> dict[str, JournalEntry]:
    """The runs of one journal file that are not done, with what happened to them."""
    entries: dict[str, JournalEntry] = {}
    for record in records:
        run_id = record["run_id"]
        try:
            if "run" in record:
                entries[run_id] = JournalEntry(Run.from_dict(record["run"]), path)
            elif "done" in record:
                entries.pop(run_id, None)
            elif run_id in entries and "started" in record:
                agent = ProcessIdentity.from_dict(record["started"])
                entries[run_id] = replace(entries[run_id], agent=agent)
            elif run_id in entries and "exit" in record:
                ended = RunExit.from_dict(record["exit"])
                entries[run_id] = replace(entries[run_id], ended=ended)
        except ValueError:
            continue
    return entries


def runs_in_flight(paths: ProjectPaths) -> set[str]:
    """Ids of the runs not done yet, as the journals tell (read only; any process may ask)."""
    return {run_id for path in sorted(paths.runs.glob("*.jsonl"))
            for run_id in _fold(path, _records(path))}


class RunJournal:
    """Append-only journals of the runs in flight, ``.claude/daemon/runs/<n>.jsonl``.

    For each run the daemon appends ``run`` before asking for it, the keeper appends
    ``started`` once the agent is spawned and ``exit`` once it is over, and the daemon appends
    ``done`` once the trigger is archived. A daemon that comes later folds the files back.
    Runs share a file (creating a file costs far more than appending a line), which is
    replaced by a new one past ``ROTATE_BYTES`` and deleted once none of its runs is open.
    """

    ROTATE_BYTES = 1 << 20

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.runs
        self._current: Path | None = None
        self._current_bytes = 0
        self._file_of: dict[str, Path] = {}
        self._open_runs: Counter[Path] = Counter()

    def create(self, run: Run) -> Path:
        """Record ``run`` before it starts; returns the file the keeper appends to."""
        if self._current is None or self._current_bytes > self.ROTATE_BYTES:
            self._current = self._folder / f"{time.time_ns()}.jsonl"
            self._current_bytes = 0
        self._current_bytes += append_json_line(self._current, {"run_id": run.run_id,
                                                            "run": run.to_dict()})
        self._file_of[run.run_id] = self._current
        self._open_runs[self._current] += 1
        return self._current

    def entries(self) -> list[JournalEntry]:
        """Every run not done yet, from every journal file (at start)."""
        found: list[JournalEntry] = []
        for path in sorted(self._folder.glob("*.jsonl")):
            folded = _fold(path, _records(path))
            self._open_runs[path] += 0  # known, so prune() removes it when nothing is open
            for run_id, entry in folded.items():
                self._file_of[run_id] = path
                self._open_runs[path] += 1
                found.append(entry)
        return found

    def read(self, run_id: str) -> JournalEntry | None:
        path = self._file_of.get(run_id)
        if path is None:
            return None
        return _fold(path, (r for r in _records(path) if r["run_id"] == run_id)).get(run_id)

    def prune(self) -> None:
        """Delete the journal files (other than the current one) with no run open."""
        for path, count in list(self._open_runs.items()):
            if count <= 0 and path != self._current:
                del self._open_runs[path]
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """At a clean stop: the current file goes too when no run in it is open."""
        self._current = None
        self.prune()

    def done(self, run_id: str) -> None:
        """The run is archived (or never started): its lines are history now."""
        path = self._file_of.pop(run_id, None)
        if path is None:
            return
        self._open_runs[path] -= 1
        current = path == self._current
        if self._open_runs[path] > 0 or (current and self._current_bytes <= self.ROTATE_BYTES):
            written = append_json_line(path, {"run_id": run_id, "done": True})
            self._current_bytes += written if current else 0
            return
        if current:
            self._current = None
        self.prune()


class Attempts:
    """Earlier attempts of triggers that are being retried, ``.claude/daemon/attempts/<name>.json``.

    Kept apart from the trigger so the trigger file stays what its writer wrote; the record says
    when the next attempt may start and goes into the result once the trigger is archived.
    The folder is read once, on first use, into an index: a fresh trigger costs a dict lookup,
    not a failed open().
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.attempts
        self._index: dict[str, tuple[list[dict[str, Any]], float]] | None = None

    def _path(self, name: str) -> Path:
        return self._folder / f"{name}.json"

    @property
    def _records(self) -> dict[str, tuple[list[dict[str, Any]], float]]:
        if self._index is None:
            self._index = {}
            for path in sorted(self._folder.glob("*.json")):
                try:
                    record = json.loads(path.read_bytes())
                    self._index[path.name[:-len(".json")]] = (list(record["attempts"]),
                                                              float(record["not_before"]))
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # unreadable: the trigger runs as if fresh
        return self._index

    def load(self, name: str) -> tuple[list[dict[str, Any]], float]:
        """The attempts so far and the earliest start of the next; none and 0 when fresh."""
        return self._records.get(name, ([], 0.0))

    def not_before(self, name: str) -> float:
        return self.load(name)[1]

    def save(self, name: str, attempts: list[dict[str, Any]], not_before: float) -> None:
        write_json_atomic(self._path(name), {"attempts": attempts, "not_before": not_before})
        self._records[name] = (attempts, not_before)

    def remove(self, name: str) -> None:
        if self._records.pop(name, None) is not None:
            self._path(name).unlink(missing_ok=True)


class History:
    """Append-only run history, one JSON object per line (``jq`` reads it as a stream)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, record: dict[str, Any]) -> None:
        append_json_line(self._path, record)


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
