"""What the daemon keeps on disk: archived triggers with their results, per-run files of the
runs in flight, the run history and the daemon's state file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import ProjectPaths
from .files import (
    candidate_names,
    read_model,
    rename_noreplace,
    write_atomic,
    write_json_atomic,
)
from .models import ArchiveFolder, Outcome, Run, RunExit, RunStarted, iso_utc

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

    def put(self, source: Path, name: str, outcome: Outcome, details: dict[str, Any],
            now: float) -> Path:
        result = {"trigger": name, "outcome": outcome.kind.value, "reason": outcome.reason,
                  "exit_code": outcome.exit_code, **details, "archived_at": iso_utc(now)}
        folder = self.folder(outcome.folder)
        for candidate in candidate_names(name):
            target = folder / candidate
            if os.path.lexists(target):
                continue
            sidecar = result_path(target)  # one left by a crash mid-archive is replaced
            write_json_atomic(sidecar, result)
            try:
                rename_noreplace(source, target)
            except BaseException:
                sidecar.unlink(missing_ok=True)
                raise
            return target
        raise FileExistsError(f"no free name for {name} in {folder}")


class RunFiles:
    """Per-run files in ``.claude/daemon/runs``: the run (written by the daemon before the
    agent starts), its processes and its exit (written by the run's monitor)."""

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.runs

    def run_path(self, run_id: str) -> Path:
        return self._folder / f"{run_id}.json"

    def started_path(self, run_id: str) -> Path:
        return self._folder / f"{run_id}.pid"

    def exit_path(self, run_id: str) -> Path:
        return self._folder / f"{run_id}.exit"

    def write_run(self, run: Run) -> None:
        write_atomic(self.run_path(run.run_id), run.model_dump_json().encode())

    def read_run(self, run_id: str) -> Run | None:
        return read_model(self.run_path(run_id), Run)

    def read_started(self, run_id: str) -> RunStarted | None:
        return read_model(self.started_path(run_id), RunStarted)

    def read_exit(self, run_id: str) -> RunExit | None:
        return read_model(self.exit_path(run_id), RunExit)

    def run_ids(self) -> list[str]:
        return sorted(path.stem for path in self._folder.glob("*.json"))

    def remove(self, run_id: str) -> None:
        for path in (self.exit_path(run_id), self.started_path(run_id), self.run_path(run_id)):
            path.unlink(missing_ok=True)


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
