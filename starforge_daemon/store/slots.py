"""The slot file: one slot per agent name, saved whole to ``agent-slots.json``.

The file's shape is the user-visible contract (``status``, ``pid`` and ``ticket`` as strings or
null, ``started_at`` ISO-8601 UTC); the extra keys help people and the next daemon. A slot is
rendered from the ledger (busy: its run and process) and the agent's history (its last run);
only the history is kept here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from starforge_daemon.core.ledger import Ledger, RunState
from starforge_daemon.core.models import OutcomeKind, Run, SlotHistory, SlotStatus, iso_utc, parse_iso_utc
from starforge_daemon.core.streams.reports import LiveProgress
from starforge_daemon.store.atomic import json_member, json_object_text, read_json_object, write_atomic


def progress_to_json(live: LiveProgress) -> dict[str, Any]:
    """A busy slot's ``progress``: what its run reports doing (runs read as events only)."""
    progress = live.progress
    return {"phase": progress.phase, "tool": progress.tool, "tool_input": progress.tool_input,
            "turns": progress.turns, "tokens_in": progress.tokens_in,
            "tokens_out": progress.tokens_out, "cost_usd": progress.cost_usd,
            "last_text": progress.last_text, "last_event_at": iso_utc(live.last_event_at),
            "rate_limited_until": iso_utc(progress.rate_limit_until)}


def slot_to_json(history: SlotHistory, state: RunState | None,
                 live: LiveProgress | None = None) -> dict[str, Any]:
    run = state.run if state else None
    entry: dict[str, Any] = {
        "status": (SlotStatus.BUSY if run else SlotStatus.IDLE).value,
        "pid": str(state.handle.pid) if state and state.handle else None,
        "ticket": run.ticket if run else None,
        "started_at": iso_utc(run.started_at) if run else None,
    }
    if run:
        entry.update(run_id=run.run_id, trigger=run.trigger_name, log=run.log_path,
                     deadline=iso_utc(run.deadline))
        if live is not None:
            entry["progress"] = progress_to_json(live)
    entry.update(last_run_id=history.last_run_id,
                 last_outcome=history.last_outcome.value if history.last_outcome else None,
                 last_log=history.last_log, last_finished_at=iso_utc(history.last_finished_at))
    return entry


def slot_history_from_json(entry: Any) -> SlotHistory:
    """The idle part of a saved slot; a busy run is restored from its run files, not from here."""
    if not isinstance(entry, dict):
        raise ValueError("slot is not an object")
    if entry.get("status") not in (SlotStatus.BUSY.value, SlotStatus.IDLE.value):
        raise ValueError(f"unknown status {entry.get('status')!r}")
    outcome = entry.get("last_outcome")
    return SlotHistory(last_run_id=entry.get("last_run_id"),
                       last_outcome=OutcomeKind(outcome) if outcome else None,
                       last_log=entry.get("last_log"),
                       last_finished_at=parse_iso_utc(entry.get("last_finished_at")))


@dataclass(frozen=True)
class SlotView:
    """One saved slot as a client reads it: the keys of :func:`slot_to_json` that clients use,
    each as saved, or None when it is missing or not text."""

    status: str | None = None
    pid: str | None = None
    ticket: str | None = None
    started_at: str | None = None
    run_id: str | None = None
    log: str | None = None
    last_run_id: str | None = None
    last_outcome: str | None = None
    last_log: str | None = None
    progress: dict[str, Any] | None = None  # see progress_to_json

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> SlotView:
        progress = entry.get("progress")
        return cls(**{field.name: value if isinstance(value := entry.get(field.name), str) else None
                      for field in fields(cls) if field.name != "progress"},
                   progress=progress if isinstance(progress, dict) else None)

    @property
    def busy(self) -> bool:
        return self.status == SlotStatus.BUSY.value


def read_slots(path: Path) -> dict[str, SlotView]:
    """The saved slots by agent, for clients; never raises (an unreadable file has none, an
    entry that is not an object is left out)."""
    return {agent: SlotView.from_dict(entry) for agent, entry in read_json_object(path).items()
            if isinstance(entry, dict)}


NO_HISTORY = SlotHistory()


class _Line(NamedTuple):
    """One agent's line of the slot file, with what it was made from."""

    history: SlotHistory
    state: RunState | None
    live: LiveProgress | None
    text: str


class SlotTable:
    """Each agent's slot history; :meth:`save` renders the file with the ledger's busy runs."""

    def __init__(self, path: Path, histories: dict[str, SlotHistory] | None = None) -> None:
        self._path = path
        self._histories: dict[str, SlotHistory] = histories or {}
        self._changed = True
        self._saved_version = -1
        self._lines: dict[str, _Line] = {}  # as last rendered, by agent

    @classmethod
    def load(cls, path: Path) -> tuple[SlotTable, str | None]:
        """The saved histories and, when the file was unusable, what was wrong with it."""
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path), None
        except (OSError, ValueError) as error:
            return cls(path), f"{path.name} is unreadable ({error}); rebuilding it"
        if not isinstance(raw, dict):
            return cls(path), f"{path.name} is not a JSON object; rebuilding it"
        histories, bad = {}, []
        for agent, entry in raw.items():
            try:
                histories[agent] = slot_history_from_json(entry)
            except ValueError:
                bad.append(agent)
        problem = f"{path.name}: dropped malformed slots {sorted(bad)}" if bad else None
        return cls(path, histories), problem

    @property
    def agents(self) -> list[str]:
        return sorted(self._histories)

    def ended(self, run: Run, outcome: OutcomeKind, ended_at: float) -> None:
        self._histories[run.agent] = SlotHistory(last_run_id=run.run_id, last_outcome=outcome,
                                                 last_log=run.log_path, last_finished_at=ended_at)
        self._changed = True

    def dirty(self, ledger: Ledger) -> bool:
        return self._changed or ledger.version != self._saved_version

    def render(self, ledger: Ledger) -> bytes:
        """The file's text. An agent's line is made again only when its history, run state or
        progress changed; each is immutable, so identity tells. (Making every line on every
        save took 14 to 23 ms with 1,000 agents, up to twenty times a second.)"""
        busy = ledger.busy_agents()
        lines: dict[str, _Line] = {}
        for agent in sorted({*self._histories, *busy}):
            history = self._histories.get(agent, NO_HISTORY)
            state = busy.get(agent)
            live = ledger.live(state.run.run_id) if state else None
            line = self._lines.get(agent)
            if line is None or line.history is not history or line.state is not state \
                    or line.live is not live:
                line = _Line(history, state, live,
                             json_member(agent, slot_to_json(history, state, live)))
            lines[agent] = line
        self._lines = lines
        return json_object_text([line.text for line in lines.values()])

    def save(self, ledger: Ledger) -> None:
        write_atomic(self._path, self.render(ledger))
        self._changed = False
        self._saved_version = ledger.version
