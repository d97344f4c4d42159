"""What ``NOTIFY_URLS``, ``NOTIFY_ON`` and ``ON_FINISH_COMMAND`` accept. Kept apart from
``notices.py``, which needs the events: the settings load this on every ``starforge trigger``."""

from __future__ import annotations

import re
from enum import StrEnum


class NoticeKind(StrEnum):
    FAILED = "failed"  # also out of memory, lost, over budget
    TIMED_OUT = "timed_out"
    STALLED = "stalled"
    DEAD_LETTER = "dead_letter"  # archived in failed/ after the last of its retries
    SUCCEEDED = "succeeded"
    HELD = "held"
    ADOPTED = "adopted"
    QUEUE_DRAINED = "queue_drained"
    DAEMON_START = "daemon_start"
    DAEMON_STOP = "daemon_stop"
    PROGRESS = "progress"  # NOTIFY_PROGRESS_EVERY, not NOTIFY_ON


SELECTABLE = tuple(kind for kind in NoticeKind if kind is not NoticeKind.PROGRESS)
DEFAULT_NOTIFY_ON = "failed,timed_out,stalled,dead_letter,held,adopted"
# ON_FINISH_COMMAND's placeholders: AGENT_COMMAND's, less the prompt (its file is gone with
# the run), plus how the run ended and where its trigger and result are now
FINISH_PLACEHOLDERS = ("agent", "ticket", "action", "from_agent", "trigger_file", "run_id",
                       "outcome", "exit_code", "result_file")
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_URL_SPLIT = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # a comma inside a URL stays


def split_urls(text: str) -> list[str]:
    """``NOTIFY_URLS`` as its URLs; raises ValueError naming a piece that is not a URL."""
    urls = [piece for piece in _URL_SPLIT.split(text.strip()) if piece]
    for url in urls:
        if not _URL_START.match(url):
            raise ValueError(f"{url!r} is not a URL like json://host/path or mailto://...")
    return urls


def parse_kinds(text: str) -> frozenset[NoticeKind]:
    """``NOTIFY_ON``: a comma list of kinds; raises ValueError naming an unknown one."""
    kinds = set()
    for word in filter(None, (piece.strip() for piece in text.split(","))):
        if word not in SELECTABLE:
            raise ValueError(f"unknown kind {word!r}; the kinds are {', '.join(SELECTABLE)}")
        kinds.add(NoticeKind(word))
    return frozenset(kinds)
