"""Finding, reading and checking trigger files. Nothing here moves a file or decides a run.

Triggers are checked by hand, not by a validation library: ``starforge trigger`` and
``submit_trigger`` use these same rules on every handoff, where start-up time counts, and each
reason says what is allowed in words. Values are shown as JSON, the way the file holds them.
"""

from __future__ import annotations

import heapq
import json
import os
import queue
import stat
import threading
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .models import AGENT_NAME_RULE, TRIGGER_FIELDS, Trigger, is_agent_name

TRIGGER_SUFFIX = ".trigger"
MAX_NESTING = 200  # far below Python's recursion limit, so the prompt's JSON can be written
PRIORITY_LIMIT = 1_000_000
MAX_RETRIES_LIMIT = 100
_TEXT_FIELDS = ("from_agent", "action", "message", "trace_id")


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


def _shown(value: Any) -> str:
    """A value as JSON, on one line and short."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isprintable():
        text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(name: str, rule: str, value: Any) -> InvalidTrigger:
    return InvalidTrigger(f"{name}: must be {rule} (got {_shown(value)})")


def _check_text(name: str, value: Any) -> None:
    """Trigger text ends up in argv and the environment, where a NUL cannot travel."""
    if not isinstance(value, str):
        raise _refuse(name, "a string", value)
    if "\x00" in value:
        raise InvalidTrigger(f"{name}: must not contain a NUL character")


def _check_ticket(name: str, value: Any) -> None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if not isinstance(value, str):
        raise _refuse(name, "a string or a whole number", value)
    _check_text(name, value)


def _check_whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(name, f"a whole number from {low} to {high}", value)


def trigger_from_dict(document: Any) -> Trigger:
    """Check a decoded JSON document against the contract's rules, field by field in the
    contract's order; raises :class:`InvalidTrigger` with the first reason."""
    if not isinstance(document, dict):
        raise InvalidTrigger("not a JSON object")
    if "to_agent" not in document:
        raise InvalidTrigger("to_agent: required field is missing")
    if not is_agent_name(document["to_agent"]):
        raise _refuse("to_agent", AGENT_NAME_RULE, document["to_agent"])
    for name in _TEXT_FIELDS:
        if document.get(name) is not None:
            _check_text(name, document[name])
    _check_ticket("ticket", document.get("ticket"))
    context = document.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise _refuse("context", "a JSON object", context)
        _check_ticket("context.ticket", context.get("ticket"))
    _check_whole("priority", document.get("priority", 0), -PRIORITY_LIMIT, PRIORITY_LIMIT)
    if document.get("max_retries") is not None:
        _check_whole("max_retries", document["max_retries"], 0, MAX_RETRIES_LIMIT)
    known = {name: document[name] for name in TRIGGER_FIELDS if name in document}
    extra = {name: value for name, value in document.items() if name not in known}
    return Trigger(**known, extra=extra)


def _no_constant(name: str) -> Any:
    raise InvalidTrigger(f"not valid JSON: {name} is not a JSON value")


def _check_nesting_and_text(document: Any) -> None:
    """Refuse documents nested deeper than MAX_NESTING and strings holding half of a UTF-16
    surrogate pair (JSON's ``\\ud800``), which cannot be put in argv or a file name."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as error:
                    half = value[error.start].encode("unicode_escape").decode()
                    raise InvalidTrigger(f"not valid JSON: {half} is half of a character (an "
                                         "unpaired surrogate)") from None
        elif isinstance(value, dict | list):
            if depth > MAX_NESTING:
                raise InvalidTrigger(f"nested more than {MAX_NESTING} levels deep")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


def _decode_json(data: bytes) -> Any:
    """Strict JSON from UTF-8 bytes (no NaN or Infinity); raises :class:`InvalidTrigger`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidTrigger(f"not valid JSON: not UTF-8 text (byte {data[error.start]:#04x} at "
                             f"offset {error.start})") from None
    if text.startswith("\ufeff"):
        raise InvalidTrigger("not valid JSON: it starts with a byte order mark (save it as "
                             "UTF-8 without one)")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InvalidTrigger(f"not valid JSON: {error.msg} at line {error.lineno} column "
                             f"{error.colno}") from None
    except RecursionError:
        raise InvalidTrigger(f"nested more than {MAX_NESTING} levels deep") from None
    except ValueError:  # a number too long for Python's int
        raise InvalidTrigger("not valid JSON: a number has too many digits") from None
    _check_nesting_and_text(document)
    return document


def parse_trigger(data: bytes) -> Trigger:
    """Check raw bytes as a trigger; raises :class:`InvalidTrigger` with the reason."""
    if not data.strip():
        raise InvalidTrigger("empty file")
    return trigger_from_dict(_decode_json(data))


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
