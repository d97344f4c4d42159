"""A busy slot's progress (what its run reports of itself) in one line for ``status``."""

from __future__ import annotations

import time
from typing import Any

from starforge_daemon.core.models import parse_iso_utc

WIDTH = 72


def activity_text(progress: dict[str, Any], now: float | None = None) -> str:
    """``tool Bash: make test · 3 turns · 12k in / 840 out · $0.0412 · 2s ago``."""
    parts = [doing_text(progress)]
    if progress.get("turns"):
        parts.append(f"{progress['turns']} turns")
    if progress.get("tokens_in") or progress.get("tokens_out"):
        parts.append(f"{count_text(progress.get('tokens_in'))} in / "
                     f"{count_text(progress.get('tokens_out'))} out")
    if isinstance(progress.get("cost_usd"), int | float):
        parts.append(f"${progress['cost_usd']:.4f}")
    if progress.get("rate_limited_until"):
        parts.append(f"rate-limited until {str(progress['rate_limited_until'])[11:16]}")
    last = parse_iso_utc(progress.get("last_event_at"))
    if last is not None:
        parts.append(f"{max(0, round((time.time() if now is None else now) - last))}s ago")
    line = " · ".join(part for part in parts if part)
    return line if len(line) <= WIDTH else line[:WIDTH - 1] + "…"


def doing_text(progress: dict[str, Any]) -> str:
    """What the run does now: its phase, or the tool and what it works on."""
    phase = progress.get("phase") or "?"
    if phase == "tool":
        tool_input = progress.get("tool_input")
        return f"tool {progress.get('tool')}: {tool_input}" if tool_input \
            else f"tool {progress.get('tool')}"
    return phase


def count_text(value: Any) -> str:
    """A token count, in thousands from 10,000 on."""
    number = value if isinstance(value, int) else 0
    return f"{number / 1000:.1f}k" if number >= 10_000 else str(number)
