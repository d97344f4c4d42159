"""``daemon-state.json``: what the daemon shows about itself, replaced whole."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import flat_dict
from starforge_daemon.store.atomic import read_json_object, write_json_atomic
from starforge_daemon.store.views import typed, view_of


@dataclass(frozen=True)
class DaemonState:
    """Field order is the order of the JSON keys."""

    pid: int
    started_at: str
    updated_at: str
    mode: str  # "parallel" or "sequential"
    max_concurrent: int
    agent_timeout: float
    agent_program: str | None
    running: int
    queued: int
    stopping: str | None  # how the daemon is stopping, once it is
    paused: dict[str, Any]  # as ``paused.json`` keeps it
    held_back: str | None  # why no new run starts (memory), if so
    pools: dict[str, list[str]]
    counters: dict[str, int]
    containment: str | None = None  # how runs are contained, in one line
    notify_error: str | None = None  # the last failed notification, while it fails

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


class StateFile:
    def __init__(self, path: Path) -> None:
        self._path = path

    def save(self, state: DaemonState) -> None:
        write_json_atomic(self._path, state.to_dict())

    def load(self) -> dict[str, Any] | None:
        """The file as it is, None if unreadable (the daemon says so at start); clients read
        it with :func:`read_state`."""
        try:
            value = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class StateView:
    """``daemon-state.json`` as a client reads it: the keys of :class:`DaemonState` that clients
    use, each as saved, or None when it is missing or of another type (a file of another
    version, or a damaged one); ``counters`` keeps only the counts that are integers."""

    started_at: str | None = None
    mode: str | None = None
    max_concurrent: int | None = None
    agent_program: str | None = None
    held_back: str | None = None
    containment: str | None = None
    notify_error: str | None = None
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateView:
        counters = data.get("counters")
        counts = counters.items() if isinstance(counters, dict) else ()
        return view_of(cls, data, counters={word: count for word, count in counts
                                            if typed(count, int) is not None})


def read_state(path: Path) -> StateView:
    """The saved state, for clients; never raises (an unreadable file shows nothing)."""
    return StateView.from_dict(read_json_object(path))
