"""The client side of ``starforge daemon``: reads the daemon's files and sends it signals.

Nothing here imports the engine; a client works the same whether a daemon runs or not.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import parse_iso_utc
from starforge_daemon.intake.triggers import is_trigger_name, scan
from starforge_daemon.runtime.local.processes import wait_for_exit
from starforge_daemon.store.atomic import move_unique
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.instance import running_pid
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.pauses import load_pauses
from starforge_daemon.store.results import RESULT_SUFFIX, result_path
from starforge_daemon.store.slots import read_slots
from starforge_daemon.store.state import read_state


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


def _moment(text: Any) -> float | None:
    """A time from a daemon file as unix seconds; None when it is missing or not a time."""
    try:
        return parse_iso_utc(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _number(text: Any) -> int | None:
    """A pid kept as text in ``agent-slots.json`` (the contract's shape), as a number."""
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _dependency_waits(paths: ProjectPaths, now: float) -> list[dict[str, Any]]:
    """The pending triggers waiting for others (``after``), judged with the project's settings
    (the defaults where they cannot be read: status still answers)."""
    from starforge_daemon.client.listing import dependency_waits
    from starforge_daemon.store.settings import Settings, SettingsError, load_settings

    try:
        settings = load_settings(paths)
    except SettingsError:
        settings = Settings()
    return dependency_waits(paths, settings, now)


def status(paths: ProjectPaths, now: float | None = None,
           judge_queue: bool = True) -> dict[str, Any]:
    """Everything ``starforge daemon status`` shows, as one JSON-ready document (shapes in
    docs/json.md). ``judge_queue=False`` leaves ``waiting`` None: finding the triggers that
    wait for others reads every trigger, which the dashboard does on its own, less often."""
    now = time.time() if now is None else now
    pid = running_pid(paths)
    state = read_state(paths.state_file)
    started = _moment(state.started_at) if pid else None
    slots = []
    for agent, slot in sorted(read_slots(paths.slots_file).items()):
        since = _moment(slot.started_at) if slot.busy else None
        log = slot.log if slot.busy else slot.last_log
        slots.append({
            "agent": agent,
            "status": slot.status,
            "pid": _number(slot.pid),
            "ticket": slot.ticket,
            "started_at": slot.started_at,
            "elapsed_s": round(now - since, 1) if since else None,
            "run_id": slot.run_id if slot.busy else slot.last_run_id,
            "last_outcome": slot.last_outcome,
            "log": log,
            "last_log_line": last_line(log),
            "progress": slot.progress if slot.busy else None,
        })
    return {
        "running": pid is not None,
        "pid": pid,
        "started_at": state.started_at if pid else None,
        "uptime_s": round(now - started, 1) if started else None,
        "mode": state.mode,
        "max_concurrent": state.max_concurrent,
        "agent_program": state.agent_program,
        "containment": state.containment,
        "slots": slots,
        "queue": {
            "pending": _count_queued(paths),
            "running": sum(1 for slot in slots if slot["status"] == "busy"),
            "done": _count_archived(paths.processed),
            "failed": _count_archived(paths.failed),
            "invalid": _count_archived(paths.invalid),
        },
        "waiting": _dependency_waits(paths, now) if judge_queue else None,
        "counters": state.counters if pid else {},
        "paused": load_pauses(paths.paused_file).to_json(),
        "held_back": state.held_back if pid else None,
        "notify_error": state.notify_error if pid else None,
    }


def signal_daemon(paths: ProjectPaths, number: int) -> int | None:
    """Send ``number`` to the running daemon; its pid, or None when none runs."""
    pid = running_pid(paths)
    if pid is None:
        return None
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return None
    except PermissionError:
        raise PermissionError(f"no permission to signal the daemon (pid {pid}): it runs as "
                              "another user") from None
    return pid


def stop(paths: ProjectPaths, timeout: float, leave_agents: bool = False) -> int | None:
    """Stop the daemon and wait for it; returns its pid, None if none ran.

    Raises ``TimeoutError`` when it is still there after ``timeout`` seconds.
    """
    pid = signal_daemon(paths, signal.SIGUSR1 if leave_agents else signal.SIGTERM)
    if pid is not None and not wait_for_exit(pid, timeout):
        raise TimeoutError(f"daemon (pid {pid}) still running after {timeout:g}s")
    return pid


class RetryError(Exception):
    """A trigger could not be put back; the message names it, ``moved`` holds where the
    ones before it went."""

    def __init__(self, message: str, moved: list[Path] | None = None) -> None:
        super().__init__(message)
        self.moved = moved or []


def retry_failed(paths: ProjectPaths, names: list[str], now: float | None = None) -> list[Path]:
    """Put archived failed triggers back in the queue with a fresh attempt count.

    Works with or without a running daemon (a rename into the queue is all it takes); the
    result file goes, since the trigger is no longer archived. Raises :class:`RetryError`
    naming the triggers not found in ``processed/failed/`` before anything moves, or the one
    that could not be moved.
    """
    stamp = int((time.time() if now is None else now) * 1e9)
    sources = [paths.failed / Path(name).name for name in names]
    missing = [source.name for source in sources if not source.is_file()]
    if missing:
        raise RetryError(f"not in {paths.failed}: {', '.join(missing)}")
    moved = []
    for source in sources:
        try:
            # the old result goes first: once the trigger is queued, a quick run may archive
            # it again under the same name, and that new result must stay
            result_path(source).unlink(missing_ok=True)
            Attempts(paths).remove(source.name)
            # stamped before the move: once queued, the daemon may take it away at once
            os.utime(source, ns=(stamp, stamp))  # queued as a new arrival
            moved.append(move_unique(source, paths.triggers))
        except OSError as error:
            raise RetryError(f"cannot put {source} back in the queue: "
                             f"{error.strerror or error}", moved) from None
    return moved
