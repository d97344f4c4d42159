"""Triggers judged lately, kept so that starting one does not read and check its file again."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from starforge_daemon.core.models import Trigger

FileIdentity = tuple[int, int, int, int]  # inode, owner, size, mtime (ns)


def identity_of(info: os.stat_result) -> FileIdentity:
    return info.st_ino, info.st_uid, info.st_size, info.st_mtime_ns


class RecentTriggers:
    """Triggers found valid, by file name, each with the identity of the file it was read from,
    within ``BUDGET_BYTES`` of memory. A claim renames the file, which keeps that identity:
    while the claimed file is still the one that was read (not replaced, not rewritten since),
    its trigger is taken from here; else it is read and checked again.

    Files are read oldest first and mostly run in that order, so when a backlog is read faster
    than it runs, the first ones kept are the next to be taken: once full, a trigger is kept
    only in place of ones kept more than ``STALE_SECONDS`` ago (never taken: they were refused,
    cancelled or taken away)."""

    BUDGET_BYTES = 3 << 20  # over 5,000 small triggers
    ENTRY_BYTES = 512  # what an entry holds besides its file's text (a small trigger: ~0.5 KiB)
    STALE_SECONDS = 60.0

    def __init__(self) -> None:
        self._kept: dict[str, tuple[FileIdentity, Trigger, float]] = {}
        self._bytes = 0

    def keep(self, name: str, identity: FileIdentity, trigger: Trigger, now: float) -> None:
        self._drop(name)
        cost = self._cost(identity)
        while self._bytes + cost > self.BUDGET_BYTES:
            oldest = next(iter(self._kept), None)
            if oldest is None or now - self._kept[oldest][2] <= self.STALE_SECONDS:
                return
            self._drop(oldest)
        self._kept[name] = (identity, trigger, now)
        self._bytes += cost

    def take(self, name: str, claimed: Path) -> Trigger | None:
        """The trigger read from the file now at ``claimed`` under ``name``, if kept."""
        kept = self._drop(name)
        if kept is None:
            return None
        try:
            info = os.lstat(claimed)
        except OSError:
            return None
        identity, trigger, _ = kept
        return trigger if stat.S_ISREG(info.st_mode) and identity_of(info) == identity else None

    def _drop(self, name: str) -> tuple[FileIdentity, Trigger, float] | None:
        kept = self._kept.pop(name, None)
        if kept is not None:
            self._bytes -= self._cost(kept[0])
        return kept

    def _cost(self, identity: FileIdentity) -> int:
        return self.ENTRY_BYTES + identity[2]
