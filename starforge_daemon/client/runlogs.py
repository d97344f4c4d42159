"""``starforge logs``: find a run's log, print it, or follow it like ``tail -f`` until the
run ends.

Run logs are ``.claude/logs/<run_id>.log`` with ``run_id = <agent>-<unix-seconds>-<hex>``;
log upkeep later gzips them to ``.log.gz``, which is read decompressed.
"""

from __future__ import annotations

import gzip
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starforge_daemon.core.runids import RUN_LOG_SUFFIXES, agent_of, log_run_id
from starforge_daemon.store.history import parse_history_line, read_history
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import ResultRecord
from starforge_daemon.store.slots import SlotView, read_slots

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CHUNK = 64 * 1024


class LogNotFound(Exception):
    """No log matches; the message says what was looked for."""


def _newest(paths: list[Path]) -> Path:
    """Newest by the start second in the name, then by modification time."""
    def key(path: Path) -> tuple[int, float]:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        run_id = log_run_id(path.name)
        return (run_id.seconds if run_id else 0), mtime
    return max(paths, key=key)


def run_log(paths: ProjectPaths, run_id: str) -> Path:
    """The log of run ``run_id`` (plain or compressed)."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ValueError(f"{run_id!r} is not a run id (like junior-dev-a-1761368400-1a2b3c)")
    for suffix in RUN_LOG_SUFFIXES:
        candidate = paths.logs / f"{run_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise LogNotFound(f"no log for run {run_id} in {paths.logs} (deleted by log upkeep, or "
                      "the run id is wrong)")


def latest_log(paths: ProjectPaths, agent: str) -> Path:
    """The newest run log of ``agent`` in ``.claude/logs``."""
    try:
        names = os.listdir(paths.logs)
    except FileNotFoundError:
        names = []
    found = [paths.logs / name for name in names if agent_of(name) == agent]
    if not found:
        raise LogNotFound(f"no run log of agent {agent} in {paths.logs}")
    return _newest(found)


def _history_run_ids(paths: ProjectPaths, agent: str, ticket: str) -> list[str]:
    records, _ = read_history(paths.history_file)
    return [record.run_id for record in records
            if record.run_id and record.agent == agent and record.ticket == ticket]


def _busy_run_id(paths: ProjectPaths, agent: str, ticket: str) -> str | None:
    slot = read_slots(paths.slots_file).get(agent)
    return slot.run_id if slot and slot.busy and slot.ticket == ticket else None


def ticket_log(paths: ProjectPaths, agent: str, ticket: str) -> Path:
    """The newest log of ``agent``'s runs for ``ticket``: finished runs from the history, and
    the run in flight from the agent's busy slot."""
    run_ids = _history_run_ids(paths, agent, ticket)
    busy = _busy_run_id(paths, agent, ticket)
    if busy:
        run_ids.append(busy)
    if not run_ids:
        raise LogNotFound(f"no run of agent {agent} for ticket {ticket} (in the run history or "
                          "running now)")
    found = []
    for run_id in set(run_ids):
        try:
            found.append(run_log(paths, run_id))
        except (LogNotFound, ValueError):
            continue
    if not found:
        raise LogNotFound(f"the logs of agent {agent}'s runs for ticket {ticket} are gone "
                          "(deleted by log upkeep)")
    return _newest(found)


def tail_offset(file: BinaryIO, lines: int) -> int:
    """Where the last ``lines`` lines of a seekable file begin."""
    end = file.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    position, newlines = end, 0
    while position > 0:
        step = min(CHUNK, position)
        position -= step
        file.seek(position)
        block = file.read(step)
        if position + step == end and block.endswith(b"\n"):
            block = block[:-1]  # the final newline ends the last line; it does not start one
        for index in range(len(block) - 1, -1, -1):
            if block[index] == 0x0A:
                newlines += 1
                if newlines == lines:
                    return position + index + 1
    return 0


def show(path: Path, write: Callable[[bytes], None], lines: int | None = None) -> int:
    """Write the log (its last ``lines`` lines if given); returns the offset reached."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as packed:
            if lines is None:
                while chunk := packed.read(CHUNK):
                    write(chunk)
            else:
                for line in deque(packed, maxlen=lines) if lines else ():
                    write(line)
        return 0
    with open(path, "rb") as file:
        if lines is not None:
            file.seek(tail_offset(file, lines))
        while chunk := file.read(CHUNK):
            write(chunk)
        return file.tell()


def follow(path: Path, write: Callable[[bytes], None], offset: int, *, poll: float = 0.2,
           note: Callable[[str], None] = lambda _text: None,
           done: Callable[[], bool] = lambda: False) -> None:
    """Write what is appended to ``path`` after ``offset`` until ``done()`` says the writer
    has finished (then what it wrote before is read to the end), or forever.

    Like ``tail -F``: when the file is replaced (daemon.log rotated) the new one is read from
    its start; when it shrinks (a run log cut back at ``LOG_MAX_BYTES``) it is read again from
    its start.
    """
    file = open(path, "rb")  # noqa: SIM115 - reopened in the loop
    finishing = False
    try:
        file.seek(offset)
        while True:
            chunk = file.read(CHUNK)
            if chunk:
                write(chunk)
                continue
            if finishing:
                return
            try:
                now_there = os.stat(path)
            except FileNotFoundError:
                now_there = None
            if now_there is not None and now_there.st_ino != os.fstat(file.fileno()).st_ino:
                try:
                    replacement = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    replacement = None  # gone again already: look at the next poll
                if replacement is not None:
                    file.close()
                    file = replacement
                    note(f"{path} was replaced; following the new file")
                    continue
            if now_there is not None and now_there.st_size < file.tell():
                file.seek(0)
                note(f"{path} was cut back; reading it again from its start")
                continue
            if done():
                finishing = True  # one more read: all it wrote before it ended
                continue
            time.sleep(poll)
    finally:
        file.close()


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, as far as the daemon's files tell."""

    outcome: str | None
    reason: str | None = None
    retry_at: str | None = None

    def __str__(self) -> str:
        text = self.outcome or "outcome unknown"
        if self.reason:
            text += f" ({self.reason})"
        return text + (f"; retry at {self.retry_at}" if self.retry_at else "")


class RunWatch:
    """Tells when run ``run_id`` of ``agent`` is over: once its line is in the run history,
    or once its slot no longer names it as busy (after having done so, or naming it as its
    last run). Reads only what the history gained since the last look."""

    def __init__(self, paths: ProjectPaths, run_id: str, agent: str) -> None:
        self._paths = paths
        self._run_id = run_id
        self._agent = agent
        self._offset = 0
        self._seen_busy = False

    def _history_line(self) -> ResultRecord | None:
        try:
            with open(self._paths.history_file, "rb") as file:
                if os.fstat(file.fileno()).st_size < self._offset:
                    self._offset = 0  # replaced by a shorter one
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return None
        complete = data[:data.rfind(b"\n") + 1]  # a line being written waits for the next look
        self._offset += len(complete)
        needle = self._run_id.encode()
        for line in complete.splitlines():
            if needle not in line:
                continue
            record = parse_history_line(line)
            if record is not None and record.run_id == self._run_id:
                return record
        return None

    def ended(self) -> RunEnd | None:
        # the slot first: the daemon writes the history before the slot, so a slot that says
        # the run is over is followed here by a history that has its line
        slot = read_slots(self._paths.slots_file).get(self._agent, SlotView())
        busy = slot.busy and slot.run_id == self._run_id
        record = self._history_line()
        if record is not None:
            return RunEnd(record.outcome, record.reason, record.retry_at)
        if busy:
            self._seen_busy = True
            return None
        if slot.last_run_id == self._run_id:
            return RunEnd(slot.last_outcome)
        return RunEnd(None) if self._seen_busy else None

