"""inotify on the trigger folder, through watchdog's inotify layer. Only the daemon loads this:
clients that read or write triggers import :mod:`.intake`, which stays free of watchdog."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from starforge_daemon.intake.triggers import is_trigger_name


class _TriggerEvents:
    """watchdog's inotify callback for the trigger folder: hands each trigger name over."""

    def __init__(self, notify: Callable[[str], None], on_overflow: Callable[[], None]) -> None:
        self._notify = notify
        self._on_overflow = on_overflow

    def on_event(self, event: InotifyEvent) -> None:
        name = os.fsdecode(event.name)
        if is_trigger_name(name):
            self._notify(name)

    def on_watch_deleted(self, wd: int) -> None:
        """The folder itself went away; the sweep reports what it cannot scan."""

    def on_queue_overflow(self) -> None:
        self._on_overflow()


class TriggerWatcher:
    """watchdog's observer holds a rename whose other half it has not seen for half a second, and
    every later event waits behind it; each claim (a rename out of this folder into
    ``running/``) is such a half, so a trigger dropped soon after a dispatch was noticed up to
    0.5 s late. Its :class:`InotifyFD` reports the kernel's events as they come, and only the
    ones asked for (created, closed after writing, renamed in). The thread only hands names to
    ``notify``; an overflow of the kernel's queue asks for a scan instead.
    """

    MASK = (InotifyConstants.IN_CREATE | InotifyConstants.IN_CLOSE_WRITE
            | InotifyConstants.IN_MOVED_TO)

    def __init__(self, folder: Path, notify: Callable[[str], None],
                 on_overflow: Callable[[], None]) -> None:
        self._inotify = InotifyFD()
        self._inotify.daemon = True
        self._inotify.add_callback(os.fsencode(folder), self.MASK,
                                   _TriggerEvents(notify, on_overflow), "triggers")

    def start(self) -> None:
        self._inotify.start()

    def stop(self) -> None:
        self._inotify.stop()
        self._inotify.join(timeout=5)


class _AnyEvent:
    """watchdog's inotify callback for a folder whose every event (an overflow too) is a
    change."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_event(self, event: InotifyEvent) -> None:
        self._on_change()

    def on_queue_overflow(self) -> None:
        self._on_change()

    def on_watch_deleted(self, wd: int) -> None:
        """A watched folder went away: nothing more will come from it."""


class FolderChanges:
    """Calls ``on_change`` (on its own thread) whenever a file in one of ``folders`` is
    created, written or moved in: for clients that wait on the daemon's files (``starforge
    wait``) instead of polling them."""

    MASK = (InotifyConstants.IN_CREATE | InotifyConstants.IN_MODIFY
            | InotifyConstants.IN_MOVED_TO | InotifyConstants.IN_CLOSE_WRITE)

    def __init__(self, folders: list[Path], on_change: Callable[[], None]) -> None:
        self._inotify = InotifyFD()
        self._inotify.daemon = True
        for folder in folders:
            self._inotify.add_callback(os.fsencode(folder), self.MASK, _AnyEvent(on_change),
                                       str(folder))

    def __enter__(self) -> FolderChanges:
        self._inotify.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._inotify.stop()
        self._inotify.join(timeout=5)
