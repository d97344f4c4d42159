"""Earlier attempts of triggers waiting to be retried."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starforge_daemon.store.atomic import fitting_name, write_json_atomic
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import RunResult

TEMP_ROOM = 32  # ".json" and write_atomic's ".<pid>.tmp" around the name


@dataclass(frozen=True)
class AttemptsRecord:
    """``attempts/<name>.json``: the attempts so far and the earliest start of the next."""

    attempts: list[RunResult] = field(default_factory=list)
    not_before: float = 0.0
    trigger: str | None = None  # the trigger's name (the file's may be shortened)

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger,
                "attempts": [attempt.to_dict() for attempt in self.attempts],
                "not_before": self.not_before}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptsRecord:
        trigger = data.get("trigger")
        return cls([RunResult.from_dict(attempt) for attempt in data["attempts"]],
                   float(data["not_before"]), trigger if isinstance(trigger, str) else None)


class Attempts:
    """Earlier attempts of triggers that are being retried, ``.claude/daemon/attempts/<name>.json``.

    Kept apart from the trigger so the trigger file stays what its writer wrote; the record says
    when the next attempt may start and goes into the result once the trigger is archived.
    The folder is read once, on first use, into an index: a fresh trigger costs a dict lookup,
    not a failed open().
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folder = paths.attempts
        self._index: dict[str, AttemptsRecord] | None = None

    def _path(self, name: str) -> Path:
        """``<name>.json``, shortened where a long trigger name would not fit (the record keeps
        the name), with room for the temporary name it is written under."""
        return self._folder / f"{fitting_name(name, room=TEMP_ROOM)}.json"

    @property
    def _records(self) -> dict[str, AttemptsRecord]:
        if self._index is None:
            self._index = {}
            for path in sorted(self._folder.glob("*.json")):
                try:
                    record = AttemptsRecord.from_dict(json.loads(path.read_bytes()))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue  # unreadable: the trigger runs as if fresh
                self._index[record.trigger or path.name[:-len(".json")]] = record
        return self._index

    def load(self, name: str) -> AttemptsRecord:
        """The attempts so far; none, and no wait, when the trigger is fresh."""
        return self._records.get(name, AttemptsRecord())

    def not_before(self, name: str) -> float:
        return self.load(name).not_before

    def save(self, name: str, record: AttemptsRecord) -> None:
        record = replace(record, trigger=name)
        write_json_atomic(self._path(name), record.to_dict())
        self._records[name] = record

    def remove(self, name: str) -> None:
        if self._records.pop(name, None) is not None:
            self._path(name).unlink(missing_ok=True)
