"""inotify on the trigger folder, through watchdog's inotify layer. Only the daemon loads this:
clients that read or write triggers import :mod:`.intake`, which stays free of watchdog."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

from watchdog.observers.inotify_c import (
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    inotify_add_watch,
    inotify_init,
)

from starforge_daemon.intake.triggers import is_trigger_name


class TriggerWatcher:
    """inotify on the trigger folder, read on the daemon's loop: ``fd`` goes to the reactor,
    ``read`` hands each trigger name to ``notify`` in the same turn. A thread of its own (as
    watchdog's observers have) cost every trigger one more wake-up, on this path where each
    one adds up to the latency (docs/BENCHMARKS.md). watchdog supplies the inotify calls;
    only the kernel's events asked for come (created, closed after writing, renamed in), with
    no rename pairing to wait for. An overflow of the kernel's queue asks for a scan instead.
    """

    MASK = (InotifyConstants.IN_CREATE | InotifyConstants.IN_CLOSE_WRITE
            | InotifyConstants.IN_MOVED_TO)
    _EVENT = struct.Struct("iIII")  # struct inotify_event, before its name
    _BUFFER = 1 << 16

    def __init__(self, folder: Path, notify: Callable[[str], None],
                 on_overflow: Callable[[], None]) -> None:
        self.fd = inotify_init()
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init: {os.strerror(ctypes.get_errno())}")
        os.set_inheritable(self.fd, False)
        os.set_blocking(self.fd, False)
        if inotify_add_watch(self.fd, os.fsencode(folder), self.MASK) < 0:
            error = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(error, f"cannot watch {folder}: {os.strerror(error)}")
        self._notify = notify
        self._on_overflow = on_overflow

    def read(self) -> None:
        """What the kernel has queued for the folder, up to a buffer's worth (the reactor
        calls again while more waits)."""
        try:
            events = os.read(self.fd, self._BUFFER)
        except BlockingIOError:
            return
        at = 0
        while at < len(events):
            _, mask, _, length = self._EVENT.unpack_from(events, at)
            at += self._EVENT.size
            if mask & InotifyConstants.IN_Q_OVERFLOW:
                self._on_overflow()
            else:
                name = os.fsdecode(events[at:at + length].rstrip(b"\0"))
                if is_trigger_name(name):
                    self._notify(name)
            at += length

    def close(self) -> None:
        os.close(self.fd)


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
