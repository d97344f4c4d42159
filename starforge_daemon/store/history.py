"""The run history, ``.claude/daemon/history.jsonl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starforge_daemon.store.atomic import append_json_line


class History:
    """Append-only run history, one JSON object per line (``jq`` reads it as a stream)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, record: dict[str, Any]) -> None:
        append_json_line(self._path, record)
