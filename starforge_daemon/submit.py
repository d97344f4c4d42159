"""Writing a trigger the safe way, for the CLI and for any Python tool::

    from starforge_daemon import submit_trigger
    path = submit_trigger("junior-dev-a", action="implement_ticket", ticket=52,
                          from_agent="orchestrator", project_dir="/repo")

The trigger is validated with the daemon's own model, written under a hidden temporary name and
renamed into place, so the daemon never sees half a file.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .files import write_atomic
from .intake import InvalidTrigger, describe_validation_error
from .models import Trigger
from .paths import ProjectPaths


def build_trigger(to_agent: str, **fields: Any) -> Trigger:
    """The validated trigger; raises :class:`InvalidTrigger` with the reason."""
    values = {key: value for key, value in fields.items() if value is not None}
    try:
        return Trigger.model_validate({"to_agent": to_agent, **values})
    except ValidationError as error:
        raise InvalidTrigger(describe_validation_error(error)) from None


def submit_trigger(to_agent: str, *, project_dir: str | os.PathLike[str] | None = None,
                   **fields: Any) -> Path:
    """Validate and atomically write a trigger; returns its path in ``.claude/triggers``."""
    trigger = build_trigger(to_agent, **fields)
    paths = ProjectPaths.resolve(project_dir)
    paths.triggers.mkdir(parents=True, exist_ok=True)
    name = f"{trigger.to_agent}-{time.time_ns()}-{secrets.token_hex(2)}.trigger"
    target = paths.triggers / name
    write_atomic(target, trigger.model_dump_json(exclude_unset=True).encode() + b"\n")
    return target
