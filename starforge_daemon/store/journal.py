"""The journals of the runs in flight, ``.claude/daemon/runs/<n>.jsonl``: what recovery reads."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import ProcessIdentity, Run, RunExit
from starforge_daemon.store.atomic import append_json_line
from starforge_daemon.store.paths import ProjectPaths


@dataclass(frozen=True)
class JournalEntry:
    """One run as its journal tells it: the run, its agent once spawned, its end once over."""

    run: Run
    path: Path
    agent: ProcessIdentity | None = None
    ended: RunExit | None = None
    spawning: bool = False  # the keeper began its spawn (it writes that line first)


def _records(path: Path, damaged: set[Path] | None = None) -> Iterator[dict[str, Any]]:
    """The records of one journal file; with ``damaged``, the file is added to it when a line
    is skipped (torn, junk) or the file cannot be read: a record may be missing."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        if damaged is not None:
            damaged.add(path)
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = _after_a_torn_line(line)
            if damaged is not None:
                damaged.add(path)
        if isinstance(record, dict) and isinstance(record.get("run_id"), str):
            yield record
        elif damaged is not None:
            damaged.add(path)


def _after_a_torn_line(line: bytes) -> Any:
    """The record appended right after a line cut short (a crash, a full disk): every writer
    starts its records with ``{"run_id":``, so the last such start holds a whole one, if any."""
    start = line.rfind(b'{"run_id":')
    if start <= 0:
        return None
    try:
        return json.loads(line[start:])
    except ValueError:
        return None


def _fold(path: Path, records: Iterable[dict[str, Any]],
          damaged: set[Path] | None = None) -> dict[str, JournalEntry]:
    """The runs of one journal file that are not done, with what happened to them (a record
    that does not read as one adds the file to ``damaged``)."""
    entries: dict[str, JournalEntry] = {}
    for record in records:
        run_id = record["run_id"]
        try:
            if "run" in record:
                entries[run_id] = JournalEntry(Run.from_dict(record["run"]), path)
            elif "done" in record:
                entries.pop(run_id, None)
            elif run_id in entries and ("spawning" in record or "unspawned" in record):
                # the reaper's "unspawned": the keeper died before the spawn it had begun
                entries[run_id] = replace(entries[run_id], spawning="spawning" in record)
            elif run_id in entries and "started" in record:
                agent = ProcessIdentity.from_dict(record["started"])
                entries[run_id] = replace(entries[run_id], agent=agent)
            elif run_id in entries and "exit" in record:
                ended = RunExit.from_dict(record["exit"])
                entries[run_id] = replace(entries[run_id], ended=ended)
        except ValueError:
            if damaged is not None:
                damaged.add(path)
            continue
    return entries


def open_runs(paths: ProjectPaths) -> list[Run]:
    """The runs not done yet, as the journals tell (read only; any process may ask)."""
    return [entry.run for path in sorted(paths.runs.glob("*.jsonl"))
            for entry in _fold(path, _records(path)).values()]


def runs_in_flight(paths: ProjectPaths) -> set[str]:
    """Ids of the runs not done yet."""
    return {run.run_id for run in open_runs(paths)}


def find_entry(folder: Path, run_id: str) -> JournalEntry | None:
    """One run not done yet, as the journals in ``folder`` tell (read only; for a runner whose
    keeper died, which must learn what the keeper or its reaper appended)."""
    for path in sorted(folder.glob("*.jsonl"), reverse=True):
        entry = _fold(path, (r for r in _records(path) if r["run_id"] == run_id)).get(run_id)
        if entry is not None:
            return entry
    return None


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
        self._paths = paths
        self._folder = paths.runs
        self._current: Path | None = None
        self._current_bytes = 0
        self._file_of: dict[str, Path] = {}
        self._side_files: dict[str, tuple[Path, ...]] = {}  # the runs' prompt, hand-off files
        self._open_runs: Counter[Path] = Counter()
        # the files found at start with a line skipped or unreadable: a run's record may be
        # missing from them, so their silence proves nothing (recovery)
        self.damaged: set[Path] = set()

    def create(self, run: Run, side_files: tuple[Path, ...]) -> Path:
        """Record ``run`` before it starts; returns the file the keeper appends to.
        ``side_files``: the ones written for it (prompt, hand-off), removed once it is done."""
        if self._current is None or self._current_bytes > self.ROTATE_BYTES:
            self._current = self._folder / f"{time.time_ns()}.jsonl"
            self._current_bytes = 0
        try:
            self._current_bytes += append_json_line(self._current, {"run_id": run.run_id,
                                                                "run": run.to_dict()})
        except OSError:
            self._current = None  # the next run starts a file of its own
            raise
        self._file_of[run.run_id] = self._current
        if side_files:
            self._side_files[run.run_id] = side_files
        self._open_runs[self._current] += 1
        return self._current

    def entries(self) -> list[JournalEntry]:
        """Every run not done yet, from every journal file (at start)."""
        found: list[JournalEntry] = []
        for path in sorted(self._folder.glob("*.jsonl")):
            folded = _fold(path, _records(path, self.damaged), self.damaged)
            self._open_runs[path] += 0  # known, so prune() removes it when nothing is open
            for run_id, entry in folded.items():
                self._file_of[run_id] = path
                self._side_files[run_id] = self._possible_side_files(run_id)
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
        """The run is archived (or never started): its lines are history now, and its prompt
        and hand-off files go (for a run created here, only those it had written)."""
        side_files = self._side_files.get(run_id, ()) if run_id in self._file_of \
            else self._possible_side_files(run_id)
        for side_file in side_files:
            side_file.unlink(missing_ok=True)
        self._side_files.pop(run_id, None)
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

    def _possible_side_files(self, run_id: str) -> tuple[Path, ...]:
        """The files a run may have had written for it, for a run not created here."""
        return self._paths.prompt_file(run_id), self._paths.upstream_file(run_id)
