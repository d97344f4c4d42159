"""A run's log as its agent writes it: the agent's stdout and stderr are the log file itself, so
its output does not go through the keeper and a keeper that dies takes no agent with it (a pipe
would: the agent's next write would meet EPIPE). The keeper follows each log through inotify:
it reads what a run read as events wrote, and cuts a log that passes its cap.

Imported by the keeper as a sibling module: standard library only (inotify through ctypes).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import struct
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from starforge_daemon.runtime.local.stream_reader import RunStream

_IN_MODIFY = 0x2
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length
_CHUNK = 1 << 16

MARKER = b"\n[starforge: output over LOG_MAX_BYTES dropped here; the latest output follows]\n"

# A log read as text is watched only from this many seconds into its run: a watch costs the
# keeper more than a short run's other handling (removing one whose file a process held, tens
# of µs), and the cap needs no instant look (a run's end cuts its log too).
FOLLOW_AFTER = 0.5
FOLLOW_BATCH = 0.1  # seconds: the logs due within it are followed in one wake-up of the keeper

Item = TypeVar("Item")


class Later(Generic[Item]):
    """Items due ``delay`` seconds after they were added, in the order they were added; the
    wait for the next is never shorter than ``batch``, so that items added in a burst are taken
    a few wake-ups at a time, not one each."""

    def __init__(self, delay: float, batch: float) -> None:
        self._delay = delay
        self._batch = batch
        self._waiting: collections.deque[tuple[float, Item]] = collections.deque()

    def add(self, item: Item, now: float) -> None:
        self._waiting.append((now + self._delay, item))

    def due(self, now: float) -> list[Item]:
        """The items due by ``now``, taken out."""
        found = []
        while self._waiting and self._waiting[0][0] <= now:
            found.append(self._waiting.popleft()[1])
        return found

    def wait(self, now: float) -> float | None:
        """Seconds until the next item is due, at least ``batch``; None when none waits."""
        return max(self._batch, self._waiting[0][0] - now) if self._waiting else None


class Inotify:
    """One inotify instance: which watched files were written to since the last read."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fd = fd

    def watch(self, path: str) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_MODIFY)
        if wd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), path)
        return wd

    def forget(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def modified(self) -> set[int]:
        """The watches with writes since the last call (drains the queue)."""
        found: set[int] = set()
        while True:
            try:
                data = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_MODIFY:
                    found.add(wd)


class FollowedLog:
    """A run's log, written by its agent (``O_APPEND``) and by the keeper's own notes.

    Over ``cap`` bytes it is cut back to its first half, a marker and the newest quarter of
    the cap, so a runaway agent's log keeps both how it started and how it ended; the agent
    appends after that. Output the disk refuses is the agent's business: its writes fail.

    The agent may write while a cut is made: the marker and the tail go to their place through
    a descriptor of the log's own without ``O_APPEND`` (through the agent's ``O_APPEND`` one,
    an agent's write between the truncation and the keeper's write landed before the marker
    and the kept tail: its last output ended up in the middle), and what the agent appended
    while the tail was read joins the tail, looked for again until there is none.
    """

    def __init__(self, fd: int, cap: int, stream: RunStream | None, notes: list[str]) -> None:
        self.fd = fd
        self.stream = stream
        self.wd: int | None = None  # its inotify watch, once followed
        self._cap = cap
        for note in notes:
            self.note(f"starforge: {note}\n".encode())
        self._read_to = os.fstat(fd).st_size  # what the stream reader has seen
        self._cutter: int | None = None  # the log without O_APPEND, opened at the first cut

    def note(self, data: bytes) -> None:
        """A line of the keeper's own, before the agent starts or after it ended (so never
        read as the agent's events)."""
        with contextlib.suppress(OSError):
            os.write(self.fd, data)

    def catch_up(self, wall: float) -> None:
        """Read what the agent wrote since the last call (for a run read as events), up to
        the log's size now, and cut the log if it passed its cap."""
        with contextlib.suppress(OSError):  # the disk refuses the cut: the run goes on
            size = os.fstat(self.fd).st_size
            if self.stream is not None:
                while self._read_to < size:
                    chunk = os.pread(self.fd, min(_CHUNK, size - self._read_to), self._read_to)
                    if not chunk:
                        break
                    self._read_to += len(chunk)
                    self.stream.feed(chunk, wall)
            if size > self._cap:
                self._cut(size)

    def close(self) -> None:
        """At the run's end: cut the log if its last writes passed the cap."""
        with contextlib.suppress(OSError):
            size = os.fstat(self.fd).st_size
            if size > self._cap:
                self._cut(size)
        os.close(self.fd)
        if self._cutter is not None:
            os.close(self._cutter)

    def _cut(self, size: int) -> None:
        head = self._cap // 2
        room = max(0, self._cap - head - len(MARKER)) // 2
        if self._cutter is None:
            self._cutter = os.open(f"/proc/self/fd/{self.fd}", os.O_WRONLY | os.O_CLOEXEC)
        tail = os.pread(self.fd, room, size - room) if room and size - room > head else b""
        while True:
            os.pwrite(self._cutter, MARKER + tail, head)  # over what the cut drops
            end = os.fstat(self.fd).st_size
            if end == size:
                break
            tail = (tail + os.pread(self.fd, end - size, size))[-room:] if room else b""
            size = end
        os.ftruncate(self._cutter, head + len(MARKER) + len(tail))
        self._read_to = head + len(MARKER) + len(tail)
