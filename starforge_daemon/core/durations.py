"""Durations as the CLI and the report show them (``5s``, ``2m05s``, ``1h02m``, ``3d04h``) and
as people write them (``90s``, ``30m``, ``24h``, ``7d``)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` -> seconds; raises ``ValueError`` otherwise."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def duration_text(seconds: float | None, *, tenths: bool = False) -> str:
    """``seconds`` in its two largest units, cut (not rounded) to whole seconds; "-" for None.
    ``tenths`` shows less than a minute with one decimal (``12.5s``), for short runs' medians."""
    if seconds is None:
        return "-"
    if tenths and seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
