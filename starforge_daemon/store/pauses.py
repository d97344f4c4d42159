"""``.claude/daemon/paused.json``: what is held back, ``{"all": bool, "agents": [names]}``.

The daemon keeps it while it runs; without a daemon ``starforge queue pause`` and ``resume``
write it themselves, holding the daemon's instance lock so that a daemon starting meanwhile
reads it whole, before or after the change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starforge_daemon.store.atomic import write_json_atomic
from starforge_daemon.store.instance import InstanceLock
from starforge_daemon.store.paths import ProjectPaths


@dataclass(frozen=True)
class Pauses:
    all: bool = False
    agents: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> Pauses:
        """Whatever can be read of a saved document; the rest counts as not paused."""
        if not isinstance(data, dict):
            return cls()
        agents = data.get("agents")
        names = agents if isinstance(agents, list) else []
        return cls(data.get("all") is True,
                   tuple(sorted({name for name in names if isinstance(name, str)})))

    def to_json(self) -> dict[str, Any]:
        return {"all": self.all, "agents": list(self.agents)}

    def holds(self, agent: str | None) -> bool:
        """``agent`` (everyone when None) is paused by itself, not counting the global pause."""
        return self.all if agent is None else agent in self.agents

    def changed(self, agent: str | None, paused: bool) -> Pauses:
        """These pauses after pausing (or resuming) ``agent``, or everyone when None."""
        if agent is None:
            return Pauses(paused, self.agents)
        names = set(self.agents) | {agent} if paused else set(self.agents) - {agent}
        return Pauses(self.all, tuple(sorted(names)))


def load_pauses(path: Path) -> Pauses:
    try:
        return Pauses.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return Pauses()


def save_pauses(path: Path, pauses: Pauses) -> None:
    write_json_atomic(path, pauses.to_json())


def change_without_daemon(paths: ProjectPaths, agent: str | None,
                          paused: bool) -> tuple[Pauses, Pauses] | None:
    """Pause (or resume) ``agent``, everyone when None, in ``paused.json`` while no daemon
    runs; the pauses before and after, or None when a daemon holds its lock (it runs, or is
    starting)."""
    paths.daemon_dir.mkdir(mode=0o755, exist_ok=True)
    lock = InstanceLock(paths.lock_file)
    if not lock.acquire(patience=0):
        return None
    try:
        before = load_pauses(paths.paused_file)
        after = before.changed(agent, paused)
        if after != before:
            save_pauses(paths.paused_file, after)
        return before, after
    finally:
        lock.release()
