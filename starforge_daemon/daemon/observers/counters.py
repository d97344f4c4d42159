"""The second observer: the ``counters`` of ``daemon-state.json``, what the daemon has done since
it started (runs spawned, runs ended by outcome, retries, rejected and cancelled triggers)."""

from __future__ import annotations

from collections.abc import Callable

from starforge_daemon.core import dependency_events as de
from starforge_daemon.core import events as ev
from starforge_daemon.core.models import OutcomeKind


def counted_word(event: ev.Event) -> str | None:
    """The counter ``event`` adds one to, if any."""
    match event:
        case ev.Spawned():
            return "spawned"
        case ev.Finished():
            return event.outcome
        case ev.Retried():
            return "retried"
        case ev.Rejected():
            return OutcomeKind.INVALID.value
        case ev.Cancelled():
            return OutcomeKind.CANCELLED.value
        case de.EndedUnrun():
            return event.outcome
        case de.Duplicate():
            return OutcomeKind.DUPLICATE.value
    return None


class CountersObserver:
    """Hands each counted event's word to ``count`` (the daemon's persistence, which saves the
    counters with the state)."""

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count

    def __call__(self, event: ev.Event) -> None:
        word = counted_word(event)
        if word is not None:
            self._count(word)
