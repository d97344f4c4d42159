"""The run history, ``.claude/daemon/runs.jsonl``: one :class:`ResultRecord` per line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starforge_daemon.store.atomic import append_json_line, append_line
from starforge_daemon.store.results import ResultRecord


class History:
    """Append-only run history, one JSON object per line (``jq`` reads it as a stream)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, record: dict[str, Any]) -> None:
        append_json_line(self._path, record)

    def append_line(self, line: bytes) -> None:
        """A record as one JSON line, made already (an archived trigger's result file's)."""
        append_line(self._path, line)

    def records(self) -> list[ResultRecord]:
        return read_history(self._path)[0]

    def final_records(self, ids: set[str]) -> dict[str, ResultRecord]:
        return final_records(self._path, ids)


def parse_history_line(line: str | bytes) -> ResultRecord | None:
    """One line of the history; None when it is not a JSON object (a torn last line, say)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return ResultRecord.from_dict(data) if isinstance(data, dict) else None


def parse_history(lines: Iterable[str | bytes]) -> tuple[list[ResultRecord], int]:
    """The records of ``lines``, and how many non-empty lines were not one."""
    records, unreadable = [], 0
    for line in lines:
        if not line.strip():
            continue
        record = parse_history_line(line)
        if record is None:
            unreadable += 1
        else:
            records.append(record)
    return records, unreadable


def read_history(path: Path) -> tuple[list[ResultRecord], int]:
    """The history's records and its unreadable lines, for clients; a missing file is an empty
    history (other errors, such as no permission, are raised)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    return parse_history(text.splitlines())


_ID_KEY = b'"id":"'


def final_records(path: Path, ids: set[str]) -> dict[str, ResultRecord]:
    """The last line of each of ``ids`` in the history that ended its trigger (a line of an
    attempt to be retried does not): one pass over the file, reading only the lines of those
    ids. A missing file has none."""
    found: dict[str, ResultRecord] = {}
    try:
        lines = path.open("rb")
    except FileNotFoundError:
        return found
    with lines:
        for line in lines:
            start = line.find(_ID_KEY)  # the first one: the record's own id comes second
            if start < 0:
                continue
            start += len(_ID_KEY)
            if line[start:line.find(b'"', start)].decode(errors="replace") not in ids:
                continue
            record = parse_history_line(line)
            if record is not None and record.id is not None and record.retry_at is None:
                found[record.id] = record
    return found
