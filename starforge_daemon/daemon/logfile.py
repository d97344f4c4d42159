"""The daemon's event log: one line per event, an upper-case event word in each.

    2025-10-25T05:00:00.123456Z INFO    SPAWNED agent=junior-dev-a ticket=52 pid=4242 ...

The file rotates by size, and is reopened when something else (logrotate) moved it away.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from starforge_daemon.core.models import iso_utc_micro

_PLAIN = re.compile(r"^[^\s\"=]+$").match
_LEVELS = {level: f"{level.upper():<7}" for level in ("info", "warning", "error", "critical")}


def render_line(timestamp: str, level: str, event: str, fields: dict[str, Any]) -> str:
    parts = [timestamp, _LEVELS.get(level) or f"{level.upper():<7}", event]
    message = fields.pop("msg", None)
    if message:
        parts.append(message if "\n" not in message else json.dumps(message))
    for key, value in fields.items():  # inline: a backlog renders a few lines per trigger
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={text if type(value) is int or _PLAIN(text) else json.dumps(text)}")
    return " ".join(parts)


class EventLogFile:
    """Appends lines to ``path``; keeps ``backups`` older files of at most ``max_bytes`` each."""

    def __init__(self, path: Path, max_bytes: int, backups: int = 3,
                 echo: TextIO | None = None) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._echo = echo
        self._lock = threading.Lock()  # upkeep threads log too
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                       | os.O_CLOEXEC, 0o644)

    def write_line(self, line: str) -> None:
        """One ``write`` of the line (no buffer: each line is on disk once the event is)."""
        with self._lock:
            try:
                os.write(self._fd, (line + "\n").encode("utf-8", "backslashreplace"))
                if os.lseek(self._fd, 0, os.SEEK_CUR) >= self._max_bytes:  # at the end: O_APPEND
                    self._rotate()
            except OSError:  # a full disk must not stop the daemon; the next line tries again
                if self._echo is None:
                    with contextlib.suppress(OSError, ValueError):
                        print(line, file=sys.stderr, flush=True)  # journald, under systemd
            if self._echo is not None:
                print(line, file=self._echo, flush=True)

    def _rotate(self) -> None:
        os.close(self._fd)
        for number in range(self._backups, 0, -1):
            older = self._path.with_name(f"{self._path.name}.{number}")
            newer = self._path.with_name(f"{self._path.name}.{number - 1}") if number > 1 \
                else self._path
            if newer.exists():
                os.replace(newer, older)
        self._fd = self._open()

    def reopen_if_moved(self, _now: float = 0.0) -> None:
        """After an outside rotation the path names a new file (or none): follow it."""
        with self._lock:
            try:
                same = os.stat(self._path).st_ino == os.fstat(self._fd).st_ino
            except OSError:
                same = False
            if not same:
                os.close(self._fd)
                self._fd = self._open()

    def close(self) -> None:
        os.close(self._fd)


class EventLog:
    """The daemon's logger: ``log.info("WORD", msg="...", key=value)`` is one line in ``sink``,
    with the time and the level (a value of None leaves its key out)."""

    def __init__(self, sink: EventLogFile, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._clock = clock

    def write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        """One line; ``fields`` is the caller's to give away (its ``msg`` is taken out)."""
        self._sink.write_line(render_line(iso_utc_micro(self._clock()), level, event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.write("info", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self.write("error", event, fields)
