"""Load-aware dispatch: hold new runs back while the machine is short of memory."""

from __future__ import annotations

from collections.abc import Callable

from starforge_daemon.core.holds import HoldKind


def available_memory_percent() -> float:
    """MemAvailable of MemTotal, as psutil.virtual_memory() reads them (psutil is not loaded
    into the daemon for this: 0.8 MiB)."""
    with open("/proc/meminfo", "rb") as file:
        sizes = {line.partition(b":")[0]: int(line.split()[1]) for line in file}
    return sizes[b"MemAvailable"] * 100.0 / sizes[b"MemTotal"]


class MemoryGauge:
    """``MIN_FREE_MEMORY_PERCENT``, checked on the dispatch path, so read at most once a second."""

    INTERVAL = 1.0
    kind = HoldKind.MEMORY

    def __init__(self, minimum_percent: float,
                 read: Callable[[], float] = available_memory_percent) -> None:
        self._minimum = minimum_percent
        self._read = read
        self._percent = 100.0
        self._next_read = 0.0

    def shortage(self, now: float) -> str | None:
        """Why new runs must wait, or None when there is memory enough."""
        if self._minimum <= 0:
            return None
        if now >= self._next_read:
            self._percent = self._read()
            self._next_read = now + self.INTERVAL
        if self._percent < self._minimum:
            return (f"available memory {self._percent:.1f}% is below "
                    f"MIN_FREE_MEMORY_PERCENT={self._minimum:g}")
        return None
