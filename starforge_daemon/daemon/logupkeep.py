"""Upkeep of the per-run agent logs: compress old ones, delete expired ones, cap each agent.

Runs on a background thread started from the engine's periodic hook, so a slow gzip never
holds up a dispatch. It only touches finished runs' logs in ``.claude/logs``. A pass keeps no
list of the logs: it streams the folder once, keeping a total per agent, and only for an agent
over its cap looks again for its oldest logs, at most ``OLDEST_BATCH`` at a time; the daemon's
memory stays the same however many logs are kept. A sweep starts a pass only when the folder
changed, a run ended, or a log became old enough to compress or delete: an idle daemon does not
list its logs again and again.
"""

from __future__ import annotations

import gzip
import heapq
import math
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starforge_daemon.core.runids import agent_of

OLDEST_BATCH = 256  # logs of one agent over its cap looked at per listing of the folder


@dataclass(frozen=True)
class LogPolicy:
    max_bytes_per_agent: int
    retention_seconds: float
    compress_after_seconds: float


@dataclass
class Tidied:
    """What one pass did, and when a log it kept next becomes old enough for another."""

    deleted: int = 0
    compressed: int = 0
    next_due: float = math.inf


@dataclass(frozen=True, slots=True)
class RunLog:
    path: str
    agent: str
    size: int
    mtime: float


def run_logs(folder: Path, in_use: Collection[str]) -> Iterator[RunLog]:
    """The finished runs' logs in ``folder``, one at a time (``in_use``: runs in flight)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            agent = agent_of(entry.name)
            if agent is None or entry.path in in_use or not entry.is_file(follow_symlinks=False):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield RunLog(entry.path, agent, info.st_size, info.st_mtime)


def compress(path: Path) -> Path:
    """gzip ``path`` beside itself (keeping its mtime), then remove the original."""
    target = path.with_name(path.name + ".gz")
    temp = target.with_name(f".{target.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with open(path, "rb") as source, open(fd, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb") as sink:
        shutil.copyfileobj(source, sink, 1024 * 1024)
    info = path.stat()
    os.utime(temp, (info.st_atime, info.st_mtime))
    os.replace(temp, target)
    path.unlink()
    return target


def _expire_and_compress(folder: Path, policy: LogPolicy, now: float, in_use: Collection[str],
                         done: Tidied) -> Counter[str]:
    """Delete expired logs, gzip old ones; the bytes each agent keeps."""
    kept: Counter[str] = Counter()
    for log in run_logs(folder, in_use):
        age = now - log.mtime
        if age > policy.retention_seconds:
            Path(log.path).unlink(missing_ok=True)
            done.deleted += 1
            continue
        size, due = log.size, log.mtime + policy.retention_seconds
        if log.path.endswith(".log"):
            if age > policy.compress_after_seconds:
                size = compress(Path(log.path)).stat().st_size
                done.compressed += 1
            else:
                due = log.mtime + policy.compress_after_seconds
        done.next_due = min(done.next_due, due)
        kept[log.agent] += size
    return kept


def _oldest(folder: Path, agents: Iterable[str], in_use: Collection[str]
            ) -> dict[str, list[RunLog]]:
    """The ``OLDEST_BATCH`` oldest logs of each of ``agents``, oldest first."""
    heaps: dict[str, list[tuple[float, str, RunLog]]] = {agent: [] for agent in agents}
    for log in run_logs(folder, in_use):
        heap = heaps.get(log.agent)
        if heap is None:
            continue
        item = (-log.mtime, log.path, log)  # a max-heap of the oldest seen: the newest on top
        if len(heap) < OLDEST_BATCH:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return {agent: [log for _, _, log in sorted(heap, reverse=True)]
            for agent, heap in heaps.items()}


def tidy(folder: Path, policy: LogPolicy, now: float, in_use: Iterable[str]) -> Tidied:
    """Apply ``policy`` once; logs named in ``in_use`` (runs in flight) are never touched."""
    busy = set(in_use)
    done = Tidied()
    kept = _expire_and_compress(folder, policy, now, busy, done)
    over = {agent: total for agent, total in kept.items() if total > policy.max_bytes_per_agent}
    while over:
        for agent, logs in _oldest(folder, over, busy).items():
            for log in logs:
                if over[agent] <= policy.max_bytes_per_agent:
                    break
                Path(log.path).unlink(missing_ok=True)
                over[agent] -= log.size
                done.deleted += 1
            if not logs or over[agent] <= policy.max_bytes_per_agent:
                del over[agent]
    return done


def _folder_stamp(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


class LogUpkeep:
    """Runs :func:`tidy` on its own thread, one pass at a time; reports through ``log``."""

    def __init__(self, folder: Path, policy: LogPolicy, log: Any) -> None:
        self._folder = folder
        self._policy = policy
        self._log = log
        self._worker: threading.Thread | None = None
        self._seen: tuple[int | None, frozenset[str]] | None = None  # at the last pass
        self._next_due = 0.0  # set by the pass's thread

    def start_pass(self, now: float, in_use: Callable[[], list[str]]) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        busy = in_use()
        seen = (_folder_stamp(self._folder), frozenset(busy))
        if seen == self._seen and now < self._next_due:
            return  # no log came or went, no run ended, none is old enough yet
        self._seen = seen
        self._worker = threading.Thread(target=self._pass, args=(now, busy),
                                        name="log-upkeep", daemon=True)
        self._worker.start()

    def _pass(self, now: float, in_use: list[str]) -> None:
        try:
            done = tidy(self._folder, self._policy, now, in_use)
        except OSError as error:
            self._next_due = 0.0  # try again at the next sweep
            self._log.error("ERROR", msg="log upkeep failed", error=error.strerror,
                            file=error.filename)
            return
        self._next_due = done.next_due
        if done.deleted or done.compressed:
            self._log.info("LOGS", msg="agent logs tidied", deleted=done.deleted,
                           compressed=done.compressed)

    def join(self, timeout: float | None = None) -> None:
        if self._worker is not None:
            self._worker.join(timeout)
