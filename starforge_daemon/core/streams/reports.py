"""Run reports as the daemon receives them from the keeper (progress messages, exit records),
read back tolerantly: a damaged journal line or an older keeper must not stop the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starforge_daemon.core.streams import Progress, Summary, as_float, as_int, as_str, count


@dataclass(frozen=True)
class LiveProgress:
    """A run's progress as the keeper reports it: with the wall-clock times of its last event
    and of its result line, which the daemon's watchdogs read."""

    progress: Progress
    last_event_at: float | None
    result_at: float | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveProgress | None:
        """None when the message does not hold a progress report."""
        values = {name: data.get(name) for name in Progress._fields}
        if not isinstance(values["phase"], str):
            return None
        for name in ("turns", "tokens_in", "tokens_out", "cache_read_tokens",
                     "cache_creation_tokens", "events", "skipped"):
            values[name] = count(values[name])
        for name in ("cost_usd", "rate_limit_until"):
            values[name] = as_float(values[name])
        for name in ("tool", "tool_input", "last_text"):
            values[name] = as_str(values[name])
        return cls(Progress(**values), as_float(data.get("last_event_at")),
                   as_float(data.get("result_at")))


def summary_from_dict(data: Any) -> Summary | None:
    """A Summary as the keeper recorded it (journal, exit message); a field of the wrong type
    is left at its empty value, a record that is no object gives None."""
    if not isinstance(data, dict):
        return None
    values: dict[str, Any] = {}
    for name, annotation in Summary.__annotations__.items():
        kind = annotation.__forward_arg__  # a NamedTuple keeps its annotations as ForwardRefs
        value = data.get(name)
        if kind == "bool":
            values[name] = value is True
        elif kind == "int":
            values[name] = count(value)
        elif kind == "int | None":
            values[name] = as_int(value)
        elif kind == "float | None":
            values[name] = as_float(value)
        else:
            values[name] = value if isinstance(value, str) else None
    return Summary(**values)
