"""Figures from samples: percentiles, and the CPU and memory of the daemon's processes."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1024 * 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max: the figures a latency target is written in."""
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values, default=math.nan)}


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system time of the process itself (its reaped children are not counted)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return math.nan
    return times.user + times.system


def rss_mb(process: psutil.Process) -> float:
    try:
        return process.memory_info().rss / MB
    except psutil.NoSuchProcess:
        return math.nan


def peak_rss_mb(process: psutil.Process) -> float:
    """The most memory the process has held so far: the kernel's high-water mark (VmHWM)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except FileNotFoundError:
        return math.nan
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return math.nan


def file_create_us(folder: Path, count: int = 50) -> float:
    """Microseconds to create an empty file in ``folder``.

    Every trigger costs the daemon and the keeper several new files (run journal, result,
    log), so a filesystem that is slow to allocate inodes slows the daemon and not its
    baselines; on a shared machine this cost can vary fiftyfold from one minute to the next.
    """
    probe = Path(tempfile.mkdtemp(prefix="create-probe-", dir=folder))
    try:
        started = time.perf_counter()
        for index in range(count):
            os.close(os.open(probe / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        return 1e6 * (time.perf_counter() - started) / count
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class MachineLoad:
    """How busy the machine was while a scenario ran (the daemon's own work included), and how
    fast its workdir created files before and after: the figures that say how far to trust
    the others."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._load_before = os.getloadavg()[0]
        self._create_before = file_create_us(workdir)
        self._times_before = psutil.cpu_times()

    def summary(self) -> dict[str, float]:
        after = psutil.cpu_times()
        total = sum(after) - sum(self._times_before)
        idle = (after.idle + after.iowait) - (self._times_before.idle + self._times_before.iowait)
        busy = 100.0 * (1 - idle / total) if total > 0 else math.nan
        return {"load_average_before": self._load_before,
                "load_average_after": os.getloadavg()[0], "cpus_busy_percent": busy,
                "file_create_us_before": self._create_before,
                "file_create_us_after": file_create_us(self._workdir)}


@dataclass
class CpuWindow:
    """CPU used by each named process between :meth:`open` and :meth:`close`, as a percentage
    of one core, plus their sum."""

    processes: dict[str, psutil.Process]
    _started: float = 0.0
    _before: dict[str, float] | None = None

    def open(self) -> None:
        self._before = {name: cpu_seconds(process) for name, process in self.processes.items()}
        self._started = time.monotonic()

    def close(self) -> dict[str, float]:
        assert self._before is not None, "open() first"
        elapsed = time.monotonic() - self._started
        shares = {name: 100.0 * (cpu_seconds(process) - self._before[name]) / elapsed
                  for name, process in self.processes.items()}
        shares["sum"] = sum(shares.values())
        shares["seconds"] = elapsed
        return shares
