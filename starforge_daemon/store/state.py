"""``daemon-state.json``: what the daemon shows about itself, replaced whole."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starforge_daemon.store.atomic import write_json_atomic


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateFile:
    def __init__(self, path: Path) -> None:
        self._path = path

    def save(self, state: DaemonState) -> None:
        write_json_atomic(self._path, state.to_dict())

    def load(self) -> dict[str, Any] | None:
        """The file as it is (clients read files of other versions too); None if unreadable."""
        try:
            value = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None
