"""Where every trigger ends: its archive folder with the result beside it, a line of the run
history, and the triggers waiting for it told (``admitted``: it was queued, so its id was live)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starforge_daemon.core.events import Problem, Publisher
from starforge_daemon.store.history import History
from starforge_daemon.store.results import Archive

EndedListener = Callable[[dict[str, Any], str | None], None]  # the result, where it went


class Archivist:
    def __init__(self, archive: Archive, history: History, events: Publisher) -> None:
        self.archive = archive
        self.history = history
        self.events = events
        self.on_ended: EndedListener = lambda _record, _archived_as: None

    def put(self, source: str | Path, name: str, record: dict[str, Any], now: float,
            admitted: bool = True) -> str:
        """Archive ``source`` with ``record``; where it went. Raises what :meth:`Archive.put`
        raises."""
        archived = self.archive.put(source, name, record, now)
        try:
            self.history.append_line(archived.line)
        except OSError as error:
            self._history_refused(error)
        if admitted:
            self.on_ended(record, archived.path)
        return archived.path

    def lost_file(self, record: dict[str, Any]) -> None:
        """A trigger's file was taken away by someone (from ``running/`` after its run, or from
        the queue before it): the history alone keeps its end."""
        self.record(record)
        self.on_ended(record, None)

    def record(self, record: dict[str, Any]) -> None:
        try:
            self.history.append(record)
        except OSError as error:
            self._history_refused(error)

    def _history_refused(self, error: OSError) -> None:
        self.events.publish(Problem(msg="cannot append run history", error=str(error)))
