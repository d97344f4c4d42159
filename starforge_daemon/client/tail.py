"""What a growing file gained since the last look, without reading it again: the dashboard
reads the run history, the event log and a run's log this way once a second."""

from __future__ import annotations

import os
from pathlib import Path

from starforge_daemon.client.runlogs import tail_offset


class FileTail:
    """The complete lines appended to ``path`` between calls of :meth:`read`.

    The first read (and a read after more than ``burst`` bytes came at once) gives only the
    last ``lines`` lines. Like ``tail -F``, a file that was replaced (``daemon.log`` rotated)
    or cut shorter is read again from its start; a line still being written waits for the
    next read.
    """

    def __init__(self, path: Path, lines: int, burst: int = 1 << 20) -> None:
        self.path = path
        self._lines = lines
        self._burst = burst
        self._inode: int | None = None
        self._offset = 0

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as file:
                info = os.fstat(file.fileno())
                if self._inode is None or info.st_size - self._offset > self._burst:
                    self._offset = tail_offset(file, self._lines)
                elif info.st_ino != self._inode or info.st_size < self._offset:
                    self._offset = 0
                self._inode = info.st_ino
                file.seek(self._offset)
                data = file.read(info.st_size - self._offset)
        except FileNotFoundError:
            return b""
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return complete
