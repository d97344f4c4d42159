"""The daemon's reading of the trigger folder: names from the watcher and scans, judged in batches."""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Container
from dataclasses import replace
from pathlib import Path

from starforge_daemon.intake.recent import RecentTriggers
from starforge_daemon.intake.triggers import Accepted, NotReady, Rejected, examine, is_trigger_name


class TriggerReader:
    """Judges the files in the trigger folder, the ones that will run first read first.

    A scan does not read files: it stats them and heaps them by (mtime, name). Each turn of the
    loop reads the next few hundred, so a backlog of 50,000 starts dispatching after its first
    batch, and whatever is queued is always older than anything still unread. Names from the
    watcher are read at once, or join the heap while a backlog is being read. A file that does
    not parse yet but was written within the settle time is looked at again later.
    """

    BATCH = 256

    def __init__(self, folder: Path, inbox: Inbox, *, max_bytes: int, allow_foreign: bool,
                 settle_seconds: float, not_before: Callable[[str], float],
                 recent: RecentTriggers, on_lost: Callable[[], None] = lambda: None) -> None:
        self._folder = folder
        self._recent = recent  # what the starter takes back instead of reading a file again
        self._on_lost = on_lost  # told when the watcher lost events and the folder is scanned
        self._not_before = not_before
        self._inbox = inbox
        self._max_bytes = max_bytes
        self._allow_foreign = allow_foreign
        self._settle_seconds = settle_seconds
        self._unread: list[tuple[int, str]] = []  # (mtime_ns, name)
        self._unread_names: set[str] = set()
        self._deferred: dict[str, float] = {}

    def scan(self, known: Container[str]) -> None:
        """Heap every trigger name not queued, heaped or waiting to settle already."""
        with os.scandir(self._folder) as entries:
            for entry in entries:
                name = entry.name
                if (is_trigger_name(name) and name not in known and name not in self._deferred
                        and name not in self._unread_names):
                    self._heap(name, entry.stat(follow_symlinks=False).st_mtime_ns)

    def _heap(self, name: str, mtime_ns: int) -> None:
        heapq.heappush(self._unread, (mtime_ns, name))
        self._unread_names.add(name)

    def read(self, now: float, known: Container[str]) -> list[tuple[str, Accepted | Rejected]]:
        """This turn's verdicts; files not ready yet or gone are kept back or dropped."""
        if self._inbox.take_scan_request():
            self._on_lost()
            self.scan(known)
        chosen = [name for name, when in self._deferred.items() if when <= now]
        for name in self._inbox.drain():
            if not self._unread:
                chosen.append(name)
            elif name not in self._unread_names:
                try:
                    self._heap(name, os.lstat(self._folder / name).st_mtime_ns)
                except FileNotFoundError:
                    continue
        for _ in range(min(self.BATCH, len(self._unread))):
            _, name = heapq.heappop(self._unread)
            self._unread_names.discard(name)
            chosen.append(name)
        verdicts: list[tuple[str, Accepted | Rejected]] = []
        for name in dict.fromkeys(chosen):
            if name in known:
                continue
            verdict = examine(self._folder / name, now, max_bytes=self._max_bytes,
                              allow_foreign=self._allow_foreign,
                              settle_seconds=self._settle_seconds)
            if isinstance(verdict, NotReady):
                self._deferred[name] = verdict.retry_at
                continue
            self._deferred.pop(name, None)
            if isinstance(verdict, Accepted):
                held_until = self._not_before(name)
                if held_until:
                    verdict = replace(verdict, entry=replace(verdict.entry,
                                                             not_before=held_until))
                self._recent.keep(verdict.entry.name, verdict.identity, verdict.trigger, now)
                verdicts.append((name, verdict))
            elif isinstance(verdict, Rejected):
                verdicts.append((name, verdict))
        return verdicts

    def next_wakeup(self, now: float) -> float | None:
        if self._unread or self._inbox.pending:
            return now
        return min(self._deferred.values(), default=None)


class Inbox:
    """Names from the watcher since the reader's last turn, and whether the folder must be
    scanned whole (the watcher lost events)."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._rescan = False

    def put(self, name: str) -> None:
        self._names.append(name)

    def request_scan(self) -> None:
        """Events were lost (the kernel's queue overflowed): look at the whole folder."""
        self._rescan = True

    def take_scan_request(self) -> bool:
        asked, self._rescan = self._rescan, False
        return asked

    @property
    def pending(self) -> bool:
        return bool(self._names) or self._rescan

    def drain(self) -> list[str]:
        names, self._names = self._names, []
        return names
