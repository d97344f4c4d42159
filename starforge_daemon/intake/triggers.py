"""Finding and reading trigger files, and judging one: accepted, rejected, not ready, gone.

Nothing here moves a file or decides a run.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from starforge_daemon.core.models import QueuedTrigger, Trigger, assigned_id
from starforge_daemon.intake.recent import FileIdentity, identity_of
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger

TRIGGER_SUFFIX = ".trigger"


def is_trigger_name(name: str) -> bool:
    return name.endswith(TRIGGER_SUFFIX) and not name.startswith(".")


@dataclass(frozen=True, slots=True)
class Accepted:
    entry: QueuedTrigger
    trigger: Trigger  # as read, from the file of ``identity``
    identity: FileIdentity


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
        want = info.st_size + 1  # no buffer of MAX_TRIGGER_BYTES for a file of a few bytes
        data = os.read(fd, want)
        if len(data) == want:  # it grew since: read on, to just past the limit
            data += os.read(fd, max_bytes + 1 - want)
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
    return Accepted(QueuedTrigger(
        path.name, sys.intern(trigger.to_agent), key, id=trigger.id or assigned_id(path.name),
        after=trigger.after, on_upstream_failure=trigger.on_upstream_failure,
        dedupe_key=trigger.dedupe_key), trigger, identity_of(info))


def scan(folder: Path) -> Iterator[str]:
    """Names of candidate trigger files in ``folder`` (any file type: the verdict comes later)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_trigger_name(entry.name):
                yield entry.name
