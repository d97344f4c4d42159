"""The client side of ``starforge daemon``: reads the daemon's files and sends it signals.

Nothing here imports the engine; a client works the same whether a daemon runs or not.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path
from typing import Any

from .files import move_unique, read_json_object
from .instance import running_pid
from .intake import is_trigger_name, scan
from .models import parse_iso_utc
from .paths import ProjectPaths
from .records import RESULT_SUFFIX, Attempts, StateFile, result_path


def _count_archived(folder: os.PathLike[str] | str) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for entry in entries
                       if is_trigger_name(entry.name) and not entry.name.endswith(RESULT_SUFFIX))
    except FileNotFoundError:
        return 0


def _count_queued(paths: ProjectPaths) -> int:
    try:
        return sum(1 for _ in scan(paths.triggers))
    except FileNotFoundError:
        return 0


def last_line(path: str | None, limit: int = 4096) -> str | None:
    """The last non-empty line of a log, read from its end only."""
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - limit))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.strip()), None)


def status(paths: ProjectPaths, now: float | None = None) -> dict[str, Any]:
    """Everything ``starforge daemon status`` shows, as one JSON-ready document."""
    now = time.time() if now is None else now
    pid = running_pid(paths)
    state = StateFile(paths.state_file).load() or {}
    started = parse_iso_utc(state.get("started_at")) if pid else None
    slots = []
    for agent, slot in sorted(read_json_object(paths.slots_file).items()):
        if not isinstance(slot, dict):
            continue
        busy = slot.get("status") == "busy"
        since = parse_iso_utc(slot.get("started_at")) if busy else None
        log = slot.get("log") if busy else slot.get("last_log")
        slots.append({
            "agent": agent,
            "status": slot.get("status"),
            "pid": slot.get("pid"),
            "ticket": slot.get("ticket"),
            "started_at": slot.get("started_at"),
            "elapsed_s": round(now - since, 1) if since else None,
            "last_outcome": slot.get("last_outcome"),
            "log": log,
            "last_log_line": last_line(log),
        })
    return {
        "running": pid is not None,
        "pid": pid,
        "started_at": state.get("started_at") if pid else None,
        "uptime_s": round(now - started, 1) if started else None,
        "mode": state.get("mode"),
        "max_concurrent": state.get("max_concurrent"),
        "slots": slots,
        "queue": {
            "pending": _count_queued(paths),
            "running": sum(1 for slot in slots if slot["status"] == "busy"),
            "done": _count_archived(paths.processed),
            "failed": _count_archived(paths.failed),
            "invalid": _count_archived(paths.invalid),
        },
        "counters": state.get("counters", {}) if pid else {},
        "paused": read_json_object(paths.paused_file) or {"all": False, "agents": []},
        "held_back": state.get("held_back") if pid else None,
    }


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Block until process ``pid`` is gone (pidfd: no polling), or the timeout passes."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


def signal_daemon(paths: ProjectPaths, number: int) -> int | None:
    """Send ``number`` to the running daemon; its pid, or None when none runs."""
    pid = running_pid(paths)
    if pid is None:
        return None
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return None
    return pid


def stop(paths: ProjectPaths, timeout: float, leave_agents: bool = False) -> int | None:
    """Stop the daemon and wait for it; returns its pid, None if none ran.

    Raises ``TimeoutError`` when it is still there after ``timeout`` seconds.
    """
    pid = signal_daemon(paths, signal.SIGUSR1 if leave_agents else signal.SIGTERM)
    if pid is not None and not wait_for_exit(pid, timeout):
        raise TimeoutError(f"daemon (pid {pid}) still running after {timeout:g}s")
    return pid


def retry_failed(paths: ProjectPaths, names: list[str], now: float | None = None) -> list[Path]:
    """Put archived failed triggers back in the queue with a fresh attempt count.

    Works with or without a running daemon (a rename into the queue is all it takes); the
    result file goes, since the trigger is no longer archived. Raises ``FileNotFoundError``
    naming the first trigger not found in ``processed/failed/``, before anything moves.
    """
    stamp = int((time.time() if now is None else now) * 1e9)
    sources = [paths.failed / Path(name).name for name in names]
    missing = [source.name for source in sources if not source.is_file()]
    if missing:
        raise FileNotFoundError(f"not in {paths.failed}: {', '.join(missing)}")
    moved = []
    for source in sources:
        # the old result goes first: once the trigger is queued, a quick run may archive it
        # again under the same name, and that new result must stay
        result_path(source).unlink(missing_ok=True)
        Attempts(paths).remove(source.name)
        target = move_unique(source, paths.triggers)
        os.utime(target, ns=(stamp, stamp))  # queued as a new arrival
        moved.append(target)
    return moved
