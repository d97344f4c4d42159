"""Is the daemon well: its loop turns on time and its keeper is connected.

The loop sleeps while nothing happens, so "it turned lately" needs a beat: with metrics on,
the loop runs :meth:`Heartbeat.beat` every ``HEARTBEAT_SECONDS`` (an upkeep task, so the loop
wakes for it). Each beat notes how late it came; the HTTP thread that answers ``/healthz``
judges the latest beat without touching the loop's state. A beat overdue by more than
``LATE_LIMIT_SECONDS``, or one that came that late (a loop just back from a stall), is
unhealthy, and so is a lost keeper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HEARTBEAT_SECONDS = 1.0
LATE_LIMIT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Pulse:
    """One beat: when (monotonic seconds), how late, and whether the keeper was connected."""

    at: float
    lag: float
    keeper_up: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reason: str | None  # why not, in one line
    loop_lag_s: float | None
    keeper: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "reason": self.reason,
                "loop_lag_s": self.loop_lag_s, "keeper_connected": self.keeper}


class Heartbeat:
    def __init__(self, keeper_up: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keeper_up = keeper_up
        self._clock = clock
        self.pulse: Pulse | None = None  # replaced whole by each beat: other threads read it

    def beat(self) -> Pulse:
        """On the loop's thread: note that it turned, how late, and the keeper's state."""
        now = self._clock()
        last = self.pulse
        lag = 0.0 if last is None else max(0.0, now - last.at - HEARTBEAT_SECONDS)
        self.pulse = Pulse(now, lag, self._keeper_up())
        return self.pulse

    def verdict(self) -> Verdict:
        """From any thread: the judgement of the latest beat."""
        pulse = self.pulse
        if pulse is None:
            return Verdict(False, "the loop has not turned yet", None, None)
        late = max(pulse.lag, self._clock() - pulse.at - HEARTBEAT_SECONDS)
        lag = round(max(late, 0.0), 3)
        if late > LATE_LIMIT_SECONDS:
            return Verdict(False, f"the daemon's loop is {late:.1f}s late (it turns at least "
                                  f"every {HEARTBEAT_SECONDS:g}s)", lag, pulse.keeper_up)
        if not pulse.keeper_up:
            return Verdict(False, "the keeper is not connected (it ended; the next run starts "
                                  "a new one)", lag, False)
        return Verdict(True, None, lag, True)
