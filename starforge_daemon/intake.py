"""Finding, reading and validating trigger files. Nothing here moves a file or decides a run."""

from __future__ import annotations

import heapq
import os
import queue
import stat
import threading
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from .models import Trigger

TRIGGER_SUFFIX = ".trigger"


def is_trigger_name(name: str) -> bool:
    return name.endswith(TRIGGER_SUFFIX) and not name.startswith(".")


class InvalidTrigger(Exception):
    """The file can never become a valid trigger; the message is the reason put on disk."""


TriggerKey = tuple[int, int, str]  # (-priority, mtime_ns, name): smallest runs first


@dataclass(frozen=True, slots=True)
class QueuedTrigger:
    """A validated trigger waiting in the queue: only what ordering needs, the file keeps the rest.

    ``agent`` is the target: an agent name or a pool name. ``not_before`` holds a retry back.
    """

    name: str
    agent: str
    key: TriggerKey
    not_before: float = 0.0


@dataclass(frozen=True, slots=True)
class Accepted:
    entry: QueuedTrigger


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


@dataclass(frozen=True, slots=True)
class NotReady:
    """Still being written, most likely: look again at ``retry_at``."""

    retry_at: float


@dataclass(frozen=True, slots=True)
class Gone:
    """The file vanished before it could be read."""


Verdict = Accepted | Rejected | NotReady | Gone

_FILE_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind_of(mode: int) -> str:
    return next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")


def describe_validation_error(error: ValidationError) -> str:
    """One line a person can act on, from pydantic's first complaint."""
    first = error.errors(include_url=False)[0]
    kind = first["type"]
    if kind == "json_invalid":
        return f"not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not first["loc"]:
        return "not a JSON object"
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return f"{where}: required field is missing"
    given = repr(first.get("input"))
    if len(given) > 80:
        given = given[:77] + "..."
    return f"{where}: {message} (got {given})"


def parse_trigger(data: bytes) -> Trigger:
    """Validate raw bytes as a trigger; raises :class:`InvalidTrigger` with the reason."""
    if not data.strip():
        raise InvalidTrigger("empty file")
    try:
        return Trigger.model_validate_json(data)
    except ValidationError as error:
        raise InvalidTrigger(describe_validation_error(error)) from None


def read_trigger_file(path: Path, max_bytes: int, allow_foreign: bool) -> tuple[bytes, os.stat_result]:
    """Read a trigger without following links, blocking on FIFOs or reading oversize files.

    Raises :class:`InvalidTrigger` for files that are not acceptable, ``FileNotFoundError`` when gone.
    """
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidTrigger(f"not a regular file: {_kind_of(info.st_mode)}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidTrigger(f"not a regular file: {_kind_of(info.st_mode)}")
        if info.st_uid != os.geteuid() and not allow_foreign:
            raise InvalidTrigger(
                f"owned by uid {info.st_uid}, not by the daemon's uid {os.geteuid()} "
                "(set ALLOW_FOREIGN_TRIGGERS=true to accept)"
            )
        if info.st_size > max_bytes:
            raise InvalidTrigger(f"too big: {info.st_size} bytes (MAX_TRIGGER_BYTES={max_bytes})")
        data = os.read(fd, max_bytes + 1)
        if len(data) > max_bytes:
            raise InvalidTrigger(f"too big: more than {max_bytes} bytes (MAX_TRIGGER_BYTES)")
        return data, info
    finally:
        os.close(fd)


def load_trigger(path: Path, max_bytes: int, allow_foreign: bool) -> Trigger:
    """Read and validate in one step; raises :class:`InvalidTrigger` or ``OSError``."""
    data, _ = read_trigger_file(path, max_bytes, allow_foreign)
    return parse_trigger(data)


def _is_utf8(name: str) -> bool:
    """False for names whose undecodable bytes ``os`` carried as lone surrogates."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def examine(path: Path, now: float, *, max_bytes: int, allow_foreign: bool,
            settle_seconds: float) -> Verdict:
    """Judge one file in the trigger folder.

    A file that does not parse but was written in the last ``settle_seconds`` is probably still
    being written under its final name, so it gets another look instead of a verdict.
    """
    if not _is_utf8(path.name):  # its name could not be recorded in the run's JSON files
        return Rejected("file name is not valid UTF-8")
    try:
        data, info = read_trigger_file(path, max_bytes, allow_foreign)
    except FileNotFoundError:
        return Gone()
    except InvalidTrigger as error:
        return Rejected(str(error))
    except OSError as error:
        return Rejected(f"cannot be read: {error.strerror or error}")
    try:
        trigger = parse_trigger(data)
    except InvalidTrigger as error:
        settled_at = info.st_mtime + settle_seconds
        if settled_at > now:
            return NotReady(retry_at=settled_at)
        return Rejected(str(error))
    key = (-trigger.priority, info.st_mtime_ns, path.name)
    return Accepted(QueuedTrigger(path.name, trigger.to_agent, key))


def scan(folder: Path) -> Iterator[str]:
    """Names of candidate trigger files in ``folder`` (any file type: the verdict comes later)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_trigger_name(entry.name):
                yield entry.name


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
    """inotify on the trigger folder, through watchdog's inotify layer.

    watchdog's observer holds a rename whose other half it has not seen for half a second, and
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


class TriggerReader:
    """Judges the files in the trigger folder, the ones that will run first read first.

    A scan does not read files: it stats them and heaps them by (mtime, name). Each turn of the
    loop reads the next few hundred, so a backlog of 50,000 starts dispatching after its first
    batch, and whatever is queued is always older than anything still unread. Names from the
    watcher are read at once, or join the heap while a backlog is being read. A file that does
    not parse yet but was written within the settle time is looked at again later.
    """

    BATCH = 256

    def __init__(self, folder: Path, inbox: Inbox, *, max_bytes: int, allow_foreign: bool,
                 settle_seconds: float, not_before: Callable[[str], float]) -> None:
        self._folder = folder
        self._not_before = not_before
        self._inbox = inbox
        self._max_bytes = max_bytes
        self._allow_foreign = allow_foreign
        self._settle_seconds = settle_seconds
        self._unread: list[tuple[tuple[int, str], str]] = []  # by (mtime_ns, name)
        self._unread_names: set[str] = set()
        self._deferred: dict[str, float] = {}

    @property
    def backlog(self) -> int:
        return len(self._unread) + len(self._deferred)

    def scan(self, known: Container[str]) -> None:
        """Heap every trigger name not queued, heaped or waiting to settle already."""
        with os.scandir(self._folder) as entries:
            for entry in entries:
                name = entry.name
                if (is_trigger_name(name) and name not in known and name not in self._deferred
                        and name not in self._unread_names):
                    self._heap(name, entry.stat(follow_symlinks=False).st_mtime_ns)

    def _heap(self, name: str, mtime_ns: int) -> None:
        heapq.heappush(self._unread, ((mtime_ns, name), name))
        self._unread_names.add(name)

    def read(self, now: float, known: Container[str]) -> list[tuple[str, Accepted | Rejected]]:
        """This turn's verdicts; files not ready yet or gone are kept back or dropped."""
        if self._inbox.take_scan_request():
            self.scan(known)
        chosen = [name for name, when in self._deferred.items() if when <= now]
        for name in self._inbox.drain():
            if not self._unread:
                chosen.append(name)
            elif name not in self._unread_names:
                try:
                    self._heap(name, os.lstat(self._folder / name).st_mtime_ns)
                except FileNotFoundError:
                    continue
        for _ in range(min(self.BATCH, len(self._unread))):
            _, name = heapq.heappop(self._unread)
            self._unread_names.discard(name)
            chosen.append(name)
        verdicts: list[tuple[str, Accepted | Rejected]] = []
        for name in dict.fromkeys(chosen):
            if name in known:
                continue
            verdict = examine(self._folder / name, now, max_bytes=self._max_bytes,
                              allow_foreign=self._allow_foreign,
                              settle_seconds=self._settle_seconds)
            if isinstance(verdict, NotReady):
                self._deferred[name] = verdict.retry_at
                continue
            self._deferred.pop(name, None)
            if isinstance(verdict, Accepted):
                held_until = self._not_before(name)
                if held_until:
                    verdict = Accepted(replace(verdict.entry, not_before=held_until))
                verdicts.append((name, verdict))
            elif isinstance(verdict, Rejected):
                verdicts.append((name, verdict))
        return verdicts

    def next_wakeup(self, now: float) -> float | None:
        if self._unread or self._inbox.pending:
            return now
        return min(self._deferred.values(), default=None)


class Inbox:
    """Names handed over by other threads, plus a wake-up call for the engine's loop."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._names: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._rescan = threading.Event()
        self._wake = wake

    def put(self, name: str) -> None:
        self._names.put(name)
        self._wake()

    def request_scan(self) -> None:
        """Events were lost (the kernel's queue overflowed): look at the whole folder."""
        self._rescan.set()
        self._wake()

    def take_scan_request(self) -> bool:
        if self._rescan.is_set():
            self._rescan.clear()
            return True
        return False

    @property
    def pending(self) -> bool:
        return not self._names.empty() or self._rescan.is_set()

    def drain(self) -> list[str]:
        names = []
        while True:
            try:
                names.append(self._names.get_nowait())
            except queue.Empty:
                return names
