"""What ``starforge top`` shows, as one typed snapshot built from the daemon's files.

Each snapshot reads the small state, slot and pause files whole (:func:`control.status`),
judges the queue as ``starforge queue list`` does, and reads only what the run history and
the event log gained since the previous snapshot.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starforge_daemon.client import control
from starforge_daemon.client.listing import Pending, QueueListing, list_queue
from starforge_daemon.client.progress import count_text, doing_text
from starforge_daemon.client.tail import FileTail
from starforge_daemon.core.durations import duration_text
from starforge_daemon.store.history import parse_history
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.pauses import Pauses
from starforge_daemon.store.results import ResultRecord

if TYPE_CHECKING:
    from starforge_daemon.store.settings import Settings

RECENT_RUNS = 50
FIRST_EVENTS = 50
RETRY_NOTE = "retry in "  # how listing.plan says a trigger waits for its retry's time


@dataclass(frozen=True)
class SlotLine:
    """One agent's slot: ``doing`` is what its run reports doing (its tool and input, or its
    phase), else the last line of its log; ``run_id`` is its run, or its last one when idle."""

    agent: str
    busy: bool
    paused: bool
    ticket: str | None
    elapsed_s: float | None
    doing: str
    tokens: str | None
    cost_usd: float | None
    run_id: str | None

    @property
    def state(self) -> str:
        word = "busy" if self.busy else "idle"
        return f"{word}, paused" if self.paused else word


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows at one moment."""

    running: bool
    daemon: str
    paused: Pauses
    slots: list[SlotLine]
    pending: list[Pending]
    not_queued: int
    queue_problem: str | None
    finished: list[ResultRecord]  # newest first
    new_events: list[str]  # event log lines since the previous snapshot (the last 50 at first)


def slot_line(slot: dict[str, Any], paused: Pauses) -> SlotLine:
    """A slot of :func:`control.status` as the dashboard shows it."""
    progress = slot["progress"] or {}
    tokens = None
    if progress.get("tokens_in") or progress.get("tokens_out"):
        tokens = f"{count_text(progress.get('tokens_in'))}/{count_text(progress.get('tokens_out'))}"
    cost = progress.get("cost_usd")
    return SlotLine(
        agent=slot["agent"], busy=slot["status"] == "busy",
        paused=paused.all or slot["agent"] in paused.agents, ticket=slot["ticket"],
        elapsed_s=slot["elapsed_s"],
        doing=doing_text(progress) if progress else (slot["last_log_line"] or ""),
        tokens=tokens, cost_usd=cost if isinstance(cost, int | float) else None,
        run_id=slot["run_id"])


def event_text(line: str) -> str:
    """An event log line with its time of day only (``08:21:29 INFO SPAWNED agent=...``): the
    date and microseconds take a third of a narrow terminal."""
    stamp, _, rest = line.partition(" ")
    if len(stamp) >= 19 and stamp[10] == "T" and stamp.endswith("Z"):
        return f"{stamp[11:19]} {' '.join(rest.split(maxsplit=1))}"
    return line


def daemon_text(doc: dict[str, Any]) -> str:
    """The daemon in one line, with what holds new runs back."""
    if doc["running"]:
        text = (f"daemon running, pid {doc['pid']}, up {duration_text(doc['uptime_s'])}, "
                f"{doc['mode']} mode, limit {doc['max_concurrent']}")
    else:
        text = "daemon not running (starforge start)"
    paused = Pauses.from_json(doc["paused"])
    if paused.all or paused.agents:
        text += " · paused: " + ("all" if paused.all else ", ".join(paused.agents))
    if doc["held_back"]:
        text += f" · holding back: {doc['held_back']}"
    return text


def _mtime_ns(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


class DashboardFeed:
    """Builds one :class:`Snapshot` after another; keeps where it was in the growing files.
    Not thread-safe: one snapshot at a time."""

    def __init__(self, paths: ProjectPaths, settings: Settings | None,
                 settings_problem: str | None = None) -> None:
        self.paths = paths
        self._settings = settings
        self._settings_problem = settings_problem
        self._history = FileTail(paths.history_file, RECENT_RUNS)
        self._events = FileTail(paths.daemon_log, FIRST_EVENTS)
        self._recent: deque[ResultRecord] = deque(maxlen=RECENT_RUNS)
        self._listing: QueueListing | None = None
        self._listing_key: tuple[Any, ...] = ()

    def _queue(self, doc: dict[str, Any], now: float) -> QueueListing | None:
        """The queue as ``starforge queue list`` judges it. Judging reads every trigger (some
        100 ms for 1,000), so the last listing is kept while nothing it depends on changed:
        the queue folders, the busy agents, the pauses, the limit, and the time when a
        trigger waits for a retry or to settle."""
        if self._settings is None:
            return None
        key = (*(_mtime_ns(folder) for folder in (self.paths.triggers, self.paths.running,
                                                   self.paths.attempts)),
               tuple(slot["agent"] for slot in doc["slots"] if slot["status"] == "busy"),
               repr(doc["paused"]), doc["running"], doc["max_concurrent"])
        listing = self._listing
        timed = listing is None or any(item.kind == "unsettled" for item in listing.not_queued) \
            or any(item.note.startswith(RETRY_NOTE) for item in listing.pending)
        if timed or key != self._listing_key:
            self._listing = list_queue(self.paths, self._settings, now)
            self._listing_key = key
        return self._listing

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        doc = control.status(self.paths, now, judge_queue=False)  # the listing says it
        paused = Pauses.from_json(doc["paused"])
        listing = self._queue(doc, now)
        records, _ = parse_history(self._history.read().splitlines())
        self._recent.extend(records)
        events = [event_text(line)
                  for line in self._events.read().decode(errors="replace").splitlines()]
        return Snapshot(running=doc["running"], daemon=daemon_text(doc),
                        paused=paused, slots=[slot_line(slot, paused) for slot in doc["slots"]],
                        pending=listing.pending if listing else [],
                        not_queued=len(listing.not_queued) if listing else 0,
                        queue_problem=self._settings_problem,
                        finished=list(reversed(self._recent)), new_events=events)
