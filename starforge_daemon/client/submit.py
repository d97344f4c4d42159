"""Writing a trigger the safe way, for the CLI and for any Python tool::

    from starforge_daemon import submit_trigger
    path = submit_trigger("junior-dev-a", action="implement_ticket", ticket=52,
                          from_agent="orchestrator", project_dir="/repo")

The trigger is checked with the daemon's own rules, against the project's ``MAX_TRIGGER_BYTES``
too, then written under a hidden temporary name and renamed into place, so the daemon never
sees half a file and never rejects what was submitted this way.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import TRIGGER_FIELDS, Trigger
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger
from starforge_daemon.store.atomic import write_atomic
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import load_settings


class TriggerWarning(UserWarning):
    """The trigger was written, but something in it looks like a mistake."""


def misspelt_fields(trigger: Trigger) -> list[str]:
    """A warning for each unknown field that looks like a misspelling of a known one.

    Unknown fields are allowed (they are handed on to the agent), so this is never an error.
    """
    if not trigger.extra:
        return []
    import difflib  # only for triggers with unknown fields

    hints = []
    for name in trigger.extra:
        close = difflib.get_close_matches(name, TRIGGER_FIELDS, n=1, cutoff=0.8)
        if close:
            hints.append(f"unknown field {name}: did you mean {close[0]}?")
    return hints


def encode_trigger(to_agent: str, **fields: Any) -> tuple[Trigger, bytes]:
    """The checked trigger and the bytes to write (fields that are None are left out);
    raises :class:`InvalidTrigger` with the reason."""
    document = {"to_agent": to_agent, **{k: v for k, v in fields.items() if v is not None}}
    for name, value in document.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise InvalidTrigger(f"{name}: cannot be written as JSON (got {value!r})") from None
    trigger = parse_trigger(json.dumps(document).encode())  # the daemon reads exactly this way
    return trigger, trigger.to_json().encode() + b"\n"


def new_trigger_id(to_agent: str) -> str:
    """A fresh id: the agent's name (cut to 40 characters), the time and a random part."""
    return f"{to_agent[:40]}-{time.time_ns():x}{os.urandom(2).hex()}"


def submit_trigger(to_agent: str, *, project_dir: str | os.PathLike[str] | None = None,
                   **fields: Any) -> Path:
    """Check and atomically write a trigger; returns its path in ``.claude/triggers``.

    Its ``id`` is the one given, else a new one, and the file is named after it
    (``<id>.trigger``, or ``<id>.<random>.trigger`` when a file of that name is queued
    already); ``after=[ids]`` makes it wait for those triggers to end.

    Raises :class:`~.intake.InvalidTrigger` for anything the daemon would reject, a trigger
    bigger than the project's ``MAX_TRIGGER_BYTES`` included, and
    :class:`~.config.SettingsError` when the project's settings cannot be read. An unknown
    field that looks misspelt (``max_retires``) is written, with a :class:`TriggerWarning`.
    """
    if fields.get("id") is None:
        fields["id"] = new_trigger_id(to_agent)
    trigger, data = encode_trigger(to_agent, **fields)
    paths = ProjectPaths.resolve(project_dir)
    limit = load_settings(paths).MAX_TRIGGER_BYTES
    if len(data) > limit:
        raise InvalidTrigger(f"too big: {len(data)} bytes (MAX_TRIGGER_BYTES={limit})")
    for hint in misspelt_fields(trigger):
        warnings.warn(hint, TriggerWarning, stacklevel=2)
    paths.triggers.mkdir(parents=True, exist_ok=True)
    target = paths.triggers / f"{trigger.id}.trigger"
    if os.path.lexists(target):
        target = paths.triggers / f"{trigger.id}.{os.urandom(4).hex()}.trigger"
    write_atomic(target, data)
    return target
