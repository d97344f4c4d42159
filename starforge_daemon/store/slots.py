"""The slot table: one slot per agent name, saved whole to ``agent-slots.json``.

The file's shape is the user-visible contract (``status``, ``pid`` and ``ticket`` as strings or
null, ``started_at`` ISO-8601 UTC); the extra keys help people and the next daemon.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import (
    OutcomeKind,
    ProcessIdentity,
    Run,
    Slot,
    SlotStatus,
    iso_utc,
    parse_iso_utc,
)
from starforge_daemon.store.atomic import write_json_atomic


def slot_to_json(slot: Slot) -> dict[str, Any]:
    run, process = slot.run, slot.process
    entry: dict[str, Any] = {
        "status": slot.status.value,
        "pid": str(process.pid) if run and process else None,
        "ticket": run.ticket if run else None,
        "started_at": iso_utc(run.started_at) if run else None,
    }
    if run:
        entry.update(run_id=run.run_id, trigger=run.trigger_name, log=run.log_path,
                     deadline=iso_utc(run.deadline))
    entry.update(last_run_id=slot.last_run_id,
                 last_outcome=slot.last_outcome.value if slot.last_outcome else None,
                 last_log=slot.last_log, last_finished_at=iso_utc(slot.last_finished_at))
    return entry


def slot_history_from_json(entry: Any) -> Slot:
    """The idle part of a saved slot; a busy run is restored from its run files, not from here."""
    if not isinstance(entry, dict):
        raise ValueError("slot is not an object")
    if entry.get("status") not in (SlotStatus.BUSY.value, SlotStatus.IDLE.value):
        raise ValueError(f"unknown status {entry.get('status')!r}")
    outcome = entry.get("last_outcome")
    return Slot(last_run_id=entry.get("last_run_id"),
                last_outcome=OutcomeKind(outcome) if outcome else None,
                last_log=entry.get("last_log"),
                last_finished_at=parse_iso_utc(entry.get("last_finished_at")))


class SlotTable:
    def __init__(self, path: Path, slots: dict[str, Slot] | None = None) -> None:
        self._path = path
        self._slots: dict[str, Slot] = slots or {}
        self.dirty = True

    @classmethod
    def load(cls, path: Path) -> tuple[SlotTable, str | None]:
        """The saved table and, when the file was unusable, what was wrong with it."""
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path), None
        except (OSError, ValueError) as error:
            return cls(path), f"{path.name} is unreadable ({error}); rebuilding it"
        if not isinstance(raw, dict):
            return cls(path), f"{path.name} is not a JSON object; rebuilding it"
        slots, bad = {}, []
        for agent, entry in raw.items():
            try:
                slots[agent] = slot_history_from_json(entry)
            except ValueError:
                bad.append(agent)
        problem = f"{path.name}: dropped malformed slots {sorted(bad)}" if bad else None
        return cls(path, slots), problem

    def __iter__(self) -> Iterator[tuple[str, Slot]]:
        return iter(self._slots.items())

    def mark_busy(self, run: Run, process: ProcessIdentity | None = None) -> None:
        previous = self._slots.get(run.agent) or Slot()
        self._slots[run.agent] = replace(previous, run=run, process=process)
        self.dirty = True

    def set_process(self, agent: str, process: ProcessIdentity) -> None:
        slot = self._slots[agent]
        self._slots[agent] = replace(slot, process=process)
        self.dirty = True

    def mark_idle(self, agent: str, run: Run | None, outcome: OutcomeKind | None,
                  ended_at: float) -> None:
        previous = self._slots.get(agent) or Slot()
        idle = replace(previous, run=None, process=None)
        if run is not None:
            idle = replace(idle, last_run_id=run.run_id, last_outcome=outcome,
                           last_log=run.log_path, last_finished_at=ended_at)
        self._slots[agent] = idle
        self.dirty = True

    def to_json(self) -> dict[str, Any]:
        return {agent: slot_to_json(slot) for agent, slot in sorted(self._slots.items())}

    def save(self) -> None:
        write_json_atomic(self._path, self.to_json())
        self.dirty = False
