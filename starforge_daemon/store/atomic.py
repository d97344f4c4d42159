"""Atomic file operations: every file the daemon writes is replaced whole, every move is a rename."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)

FILE_MODE = 0o644
NAME_MAX = 255  # bytes in one file name, on every filesystem Linux mounts for a project
_NEW = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # never through a planted link
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would make one per call


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never a mix.

    On error the temporary file is removed and the old file is left as it was.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, _NEW | os.O_EXCL, FILE_MODE)
    except FileExistsError:  # left by a crash, or planted: removed, never written through
        temp.unlink()
        fd = os.open(temp, _NEW | os.O_EXCL, FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_new(path: str | Path, data: bytes, mode: int = FILE_MODE, *,
              exclusive: bool = False) -> None:
    """Write ``path`` in place, for files no reader trusts before a later rename publishes them
    (or that only one reader, told of them, reads). A symlink there is refused (``ELOOP``);
    ``exclusive``: any file there is (``FileExistsError``)."""
    fd = os.open(path, _NEW | (os.O_EXCL if exclusive else os.O_TRUNC), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def json_line(record: Any) -> bytes:
    """``record`` as one line of compact JSON."""
    return _COMPACT.encode(record).encode() + b"\n"


def append_json_line(path: Path, record: Any) -> int:
    """Append ``record`` as one line with a single ``write``, so concurrent appenders never
    interleave; returns the bytes written. A line cut short (the disk filled) raises ``ENOSPC``:
    its reader skips a torn line."""
    return append_line(path, json_line(record))


def append_line(path: Path, line: bytes) -> int:
    """``append_json_line`` for a line made already."""
    fd = os.open(path, _NEW | os.O_APPEND, FILE_MODE)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written < len(line):
        raise OSError(errno.ENOSPC, "line cut short", str(path))
    return written


def write_json_atomic(path: Path, value: Any, *, durable: bool = False) -> None:
    write_atomic(path, json_text(value), durable=durable)


def json_text(value: Any) -> bytes:
    """``value`` as JSON, an object with one key per line: readable, and made by the C encoder
    (``indent`` takes the pure-Python one, many times slower; the slot file is written up to
    twenty times a second)."""
    if not isinstance(value, dict):
        return json.dumps(value).encode() + b"\n"
    return json_object_text([json_member(key, item) for key, item in value.items()])


def json_member(key: Any, item: Any) -> str:
    """One line of :func:`json_text`'s object, to be joined by :func:`json_object_text`."""
    return f"  {json.dumps(str(key))}: {json.dumps(item)}"


def json_object_text(members: list[str]) -> bytes:
    """The object of :func:`json_text` from its lines, made by :func:`json_member`."""
    if not members:
        return b"{}\n"
    lines = ",\n".join(members)
    return f"{{\n{lines}\n}}\n".encode()


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; empty when the file is missing, unreadable or not one."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; raises ``OSError`` or ``ValueError``."""
    return json.loads(path.read_bytes())


def rename_noreplace(source: str | Path, target: str | Path) -> None:
    """Atomic rename that fails with ``FileExistsError`` instead of replacing ``target``."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                      _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), str(source), None, str(target))
    # Filesystems without RENAME_NOREPLACE: the daemon is the only mover, so check then rename.
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


def fitting_name(name: str, room: int = 0) -> str:
    """``name``, or when it and ``room`` more bytes would pass ``NAME_MAX``, its start, a hash of
    the whole and its suffix: the same name always gives the same short one."""
    if len(os.fsencode(name)) + room <= NAME_MAX:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not stem or len(suffix) > 16:
        stem, dot, suffix = name, "", ""
    tag = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    keep = NAME_MAX - room - len(tag) - 1 - len(os.fsencode(dot + suffix))
    start = os.fsdecode(os.fsencode(stem)[:max(0, keep)])
    return f"{start}~{tag}{dot}{suffix}"


def candidate_names(name: str, room: int = 0) -> Iterator[str]:
    """``name``, then ``name`` with a counter before its suffix (``a.trigger`` -> ``a.1.trigger``),
    each leaving ``room`` bytes for what follows it within ``NAME_MAX`` (see ``fitting_name``)."""
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    yield fitting_name(name, room)
    for attempt in range(1, 100_000):
        yield fitting_name(f"{stem}.{attempt}{dot}{suffix}", room)


def move_unique(source: Path, folder: Path) -> Path:
    """Rename ``source`` into ``folder`` under a name that is free there; returns the new path."""
    for candidate in candidate_names(source.name):
        target = folder / candidate
        try:
            rename_noreplace(source, target)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(errno.EEXIST, "no free name", str(folder / source.name))
