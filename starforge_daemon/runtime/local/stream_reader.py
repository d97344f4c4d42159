"""A run's output read as its agent CLI's events, in the keeper, off the daemon's loop.

The keeper already copies every chunk an agent writes into its log; for a run whose command
prints a JSON-lines stream (``AGENT_OUTPUT``, see ``core.streams``) it also hands the chunk to
a :class:`RunStream`, which splits it into lines for the run's adapter and says when the
daemon should next hear of the run's progress: at most once a second, and only when something
happened. A line longer than ``MAX_LINE_BYTES`` is dropped as it arrives and counted.

Imported by the keeper as a sibling module; ``core.streams`` is pure and stdlib-only.
"""

from __future__ import annotations

from typing import Any

from starforge_daemon.core import streams

PROGRESS_INTERVAL = 1.0  # seconds between two progress messages of one run, at least


def open_stream(kind: str | None) -> RunStream | None:
    """The stream reader for an output kind the daemon chose; None for plain text."""
    adapter = streams.new_adapter(kind or "text")
    return None if adapter is None else RunStream(adapter)


class RunStream:
    """Lines to the adapter; when (monotonic time) a progress message is due and what it says.

    ``last_event_at`` and ``result_at`` are wall-clock times, for the daemon's watchdogs.
    """

    def __init__(self, adapter: streams.Adapter) -> None:
        self._adapter = adapter
        self._partial = b""
        self._dropping = False  # inside a line over MAX_LINE_BYTES
        self._told_events = 0
        self._told_at: float | None = None
        self.last_event_at: float | None = None
        self.result_at: float | None = None

    def feed(self, chunk: bytes, wall: float) -> None:
        events = self._adapter.events
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if self._dropping:
                self._dropping = False
                self._adapter.skip()
            else:
                self._adapter.feed(line)
        if len(self._partial) > streams.MAX_LINE_BYTES:
            self._partial, self._dropping = b"", True
        if self._adapter.events != events:
            self.last_event_at = wall
            if self.result_at is None and self._adapter.phase == "finishing":
                self.result_at = wall

    def due_in(self, now: float) -> float | None:
        """Seconds until a progress message is due (0: now); None when nothing is new."""
        if self._adapter.events == self._told_events:
            return None
        if self._told_at is None:
            return 0.0
        return max(0.0, self._told_at + PROGRESS_INTERVAL - now)

    def progress(self, now: float) -> dict[str, Any]:
        """The progress message's fields; from now on, nothing is new."""
        self._told_events, self._told_at = self._adapter.events, now
        return {**self._adapter.progress()._asdict(), "last_event_at": self.last_event_at,
                "result_at": self.result_at}

    def finish(self) -> dict[str, Any]:
        """What the run did by its own account, once its output has ended."""
        if self._partial and not self._dropping:
            self._adapter.feed(self._partial)
        elif self._dropping:
            self._adapter.skip()
        self._partial, self._dropping = b"", False
        return self._adapter.summary()._asdict()
