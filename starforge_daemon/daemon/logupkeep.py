"""Upkeep of the per-run agent logs: compress old ones, delete expired ones, cap each agent.

Runs on a background thread started from the engine's periodic hook, so a slow gzip never
holds up a dispatch. It only touches finished runs' logs in ``.claude/logs``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starforge_daemon.core.runids import agent_of


@dataclass(frozen=True)
class LogPolicy:
    max_bytes_per_agent: int
    retention_seconds: float
    compress_after_seconds: float


@dataclass(frozen=True)
class RunLog:
    path: Path
    agent: str
    size: int
    mtime: float


def run_logs(folder: Path) -> list[RunLog]:
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            agent = agent_of(entry.name)
            if agent is None or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            found.append(RunLog(Path(entry.path), agent, info.st_size, info.st_mtime))
    return found


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


def tidy(folder: Path, policy: LogPolicy, now: float, in_use: Iterable[str]) -> dict[str, int]:
    """Apply ``policy`` once; logs named in ``in_use`` (runs in flight) are never touched."""
    busy = set(in_use)
    done = {"deleted": 0, "compressed": 0}
    kept: dict[str, list[RunLog]] = defaultdict(list)
    for log in run_logs(folder):
        if str(log.path) in busy:
            continue
        age = now - log.mtime
        if age > policy.retention_seconds:
            log.path.unlink(missing_ok=True)
            done["deleted"] += 1
            continue
        if age > policy.compress_after_seconds and log.path.suffix == ".log":
            packed = compress(log.path)
            log = RunLog(packed, log.agent, packed.stat().st_size, log.mtime)
            done["compressed"] += 1
        kept[log.agent].append(log)
    for logs in kept.values():
        total = sum(log.size for log in logs)
        for log in sorted(logs, key=lambda item: item.mtime):
            if total <= policy.max_bytes_per_agent:
                break
            log.path.unlink(missing_ok=True)
            total -= log.size
            done["deleted"] += 1
    return done


class LogUpkeep:
    """Runs :func:`tidy` on its own thread, one pass at a time; reports through ``log``."""

    def __init__(self, folder: Path, policy: LogPolicy, log: Any) -> None:
        self._folder = folder
        self._policy = policy
        self._log = log
        self._worker: threading.Thread | None = None

    def start_pass(self, now: float, in_use: Callable[[], list[str]]) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        self._worker = threading.Thread(target=self._pass, args=(now, in_use()),
                                        name="log-upkeep", daemon=True)
        self._worker.start()

    def _pass(self, now: float, in_use: list[str]) -> None:
        try:
            done = tidy(self._folder, self._policy, now, in_use)
        except OSError as error:
            self._log.error("ERROR", msg="log upkeep failed", error=error.strerror,
                            file=error.filename)
            return
        if any(done.values()):
            self._log.info("LOGS", msg="agent logs tidied", **done)

    def join(self, timeout: float | None = None) -> None:
        if self._worker is not None:
            self._worker.join(timeout)
