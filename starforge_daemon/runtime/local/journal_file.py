"""A run's journal as the keeper appends to it: a line the disk refuses (full, read-only) waits,
in order, and is tried again until it is written, never dropped. A line written only in part is
finished by the next try, so it is whole in the end.

Imported by the keeper as a sibling module: stdlib only.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

RETRY_INTERVAL = 1.0  # seconds between two tries of a journal's waiting lines
COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would make one per call


class JournalFile:
    """Opened for each try, not held: a folder that turned read-only (or lost its permission)
    refuses the line then, and takes it once it is writable again."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.waiting: list[bytes] = []

    def append(self, record: dict[str, Any]) -> None:
        self.waiting.append(COMPACT.encode(record).encode() + b"\n")
        self.flush()

    def flush(self) -> None:
        """Write what waits, as far as the disk takes it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ENOENT:  # the journal was removed: no one will read it
                self.waiting.clear()
            return
        try:
            while self.waiting:
                line = self.waiting[0]
                written = os.write(fd, line)
                if written < len(line):
                    self.waiting[0] = line[written:]
                else:
                    self.waiting.pop(0)
        except OSError:
            return
        finally:
            os.close(fd)
