"""``starforge wait``: block until triggers end. A trigger has ended once the run history has
its last line (an attempt to be retried has not); the history is read as it grows, woken by
inotify on ``.claude/daemon``, not by polling."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from starforge_daemon.client.listing import list_queue
from starforge_daemon.intake.watcher import FolderChanges
from starforge_daemon.store.history import final_records, parse_history_line
from starforge_daemon.store.journal import open_runs
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import ResultRecord
from starforge_daemon.store.settings import Settings


@dataclass(frozen=True)
class Ending:
    """How a trigger waited for ended (``outcome`` None: it had not when the wait gave up)."""

    id: str
    outcome: str | None
    reason: str | None = None
    trigger: str | None = None
    run_id: str | None = None  # its last run's, if it ran
    log: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    @classmethod
    def of(cls, record: ResultRecord) -> Ending:
        return cls(str(record.id), record.outcome, record.reason, record.trigger,
                   record.run_id, record.log)


def live_triggers(paths: ProjectPaths, settings: Settings) -> list[tuple[str, str | None]]:
    """``(id, ticket)`` of every trigger queued, waiting or running now."""
    pending = [(item.id, item.ticket) for item in list_queue(paths, settings, time.time()).pending]
    return pending + [(run.trigger_ident, run.ticket) for run in open_runs(paths)]


class HistoryTail:
    """The run history's lines that end a trigger, appended since it was opened."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._offset = path.stat().st_size
        except FileNotFoundError:
            self._offset = 0

    def endings(self) -> list[ResultRecord]:
        try:
            with self._path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        records = (parse_history_line(line) for line in complete.splitlines() if line.strip())
        return [record for record in records
                if record is not None and record.id is not None and record.retry_at is None]


class Waiter:
    """The triggers of ``ids`` that have not ended yet. Opened before it looks at what is live,
    so an end between the two is not missed; an id live now waits for a new end, one that is
    not waits for its last end in the history (or for a trigger with that id to come)."""

    def __init__(self, paths: ProjectPaths, ids: Iterable[str], live: set[str]) -> None:
        self._tail = HistoryTail(paths.history_file)
        self.pending = list(dict.fromkeys(ids))
        self._ended_before = final_records(paths.history_file,
                                           {one for one in self.pending if one not in live})

    def ended(self) -> list[Ending]:
        """What ended since the last call (at the first, what had ended already)."""
        found = [Ending.of(record) for one, record in self._ended_before.items()]
        self._ended_before = {}
        found += [Ending.of(record) for record in self._tail.endings()]
        endings = []
        for ending in found:
            if ending.id in self.pending:
                self.pending.remove(ending.id)
                endings.append(ending)
        return endings


def wait_for(paths: ProjectPaths, waiter: Waiter, timeout: float | None,
             on_end: Callable[[Ending], None],
             on_wake: Callable[[], None] = lambda: None) -> list[str]:
    """Call ``on_end`` for each trigger as it ends (and ``on_wake`` at each change of the
    daemon's files) until none is left or ``timeout`` passes; the ids still pending then."""
    deadline = None if timeout is None else time.monotonic() + timeout
    changed = threading.Event()
    folders = [paths.daemon_dir, paths.runs]
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    with FolderChanges(folders, changed.set):
        while True:
            changed.clear()
            for ending in waiter.ended():
                on_end(ending)
            if not waiter.pending:
                return []
            on_wake()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return list(waiter.pending)
            changed.wait(left)
