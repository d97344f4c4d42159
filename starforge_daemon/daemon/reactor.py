"""The loop's one blocking point: a selector over the runner's descriptors, a wake pipe for
other threads (the trigger watcher, the control socket) and for signals (``wake_fd`` is what
``signal.set_wakeup_fd`` writes to)."""

from __future__ import annotations

import contextlib
import os
import selectors
from collections.abc import Callable


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._drain_wakes)

    @property
    def wake_fd(self) -> int:
        return self._wake_write

    def wake(self) -> None:
        """Thread- and signal-safe: end the current (or the next) ``wait`` early."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def watch(self, fd: int, on_ready: Callable[[], None], write: bool = False) -> None:
        """Call ``on_ready`` from ``wait`` when ``fd`` is readable (or writable, with ``write``);
        watching a descriptor again changes what it is watched for."""
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        if fd in self._selector.get_map():
            self._selector.modify(fd, mask, on_ready)
        else:
            self._selector.register(fd, mask, on_ready)

    def forget(self, fd: int) -> None:
        self._selector.unregister(fd)

    def wait(self, timeout: float | None) -> None:
        """Block until something is ready or ``timeout`` passes; run the callbacks."""
        for key, _ in self._selector.select(timeout):
            if self._selector.get_map().get(key.fd) is key:  # not forgotten by an earlier one
                key.data()

    def _drain_wakes(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass

    def close(self) -> None:
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
