"""Why new runs wait besides memory: the project's files refusing writes (a full or read-only
disk) until a probe succeeds, a rate limit of the agents' CLI until its reset, and the day's
spending once it reaches ``DAILY_COST_LIMIT_USD``, until midnight UTC.

Pure bookkeeping: the engine tells it what runs report and finish with, the starter asks it
for a reason to hold. Every agent shares one command, so a rate limit holds them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

DAY = 86400.0
DISK_PROBE_FIRST = 1.0  # seconds before the first new try of a refused write; doubling
DISK_PROBE_MAX = 30.0


def utc_day_start(moment: float) -> float:
    day = datetime.fromtimestamp(moment, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def clock_text(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M UTC")


class HoldKind(StrEnum):
    """What holds new runs back (the starter's memory gauge, or one of :class:`Holds`)."""

    MEMORY = "memory"
    DISK = "disk"
    RATE_LIMIT = "rate_limit"
    BUDGET = "budget"
    RUNNER = "runner"  # the runs' backend does not answer (RUNNER=slurm: its controller)


@dataclass(frozen=True)
class Hold:
    """One reason new runs wait, and when it ends by itself (for a disk spell: when the next
    write may be tried)."""

    kind: HoldKind
    reason: str
    ends_at: float


@dataclass(frozen=True)
class HoldRules:
    rate_limit_hold: float  # seconds, when the CLI gave no reset time
    rate_limit_max_hold: float
    daily_cost_limit: float | None


class Holds:
    def __init__(self, rules: HoldRules) -> None:
        self.rules = rules
        self.rate_limited_until: float | None = None
        self._day = 0.0  # the start of the UTC day day_cost counts
        self.day_cost = 0.0
        self.disk_error: str | None = None
        self._disk_wait = 0.0
        self._disk_probe_at = 0.0

    def disk_refused(self, error: str, now: float) -> bool:
        """A write to the project's files failed; True when this begins a spell. The next try
        is allowed after a backoff (``probe_due``), doubled by a failed try only: the other
        writes refused while it waits (the history, the slot file...) leave it as it is."""
        began = self.disk_error is None
        self.disk_error = error
        if began:
            self._disk_wait = DISK_PROBE_FIRST
        elif now >= self._disk_probe_at:
            self._disk_wait = min(2 * self._disk_wait, DISK_PROBE_MAX)
        else:
            return False
        self._disk_probe_at = now + self._disk_wait
        return began

    def disk_accepted(self) -> None:
        """A write went through: the files take writes again."""
        self.disk_error = None

    def probe_due(self, now: float) -> bool:
        """Whether a write may be tried now, during a spell of refused writes."""
        return self.disk_error is not None and now >= self._disk_probe_at

    def rate_limited(self, reset: float | None, now: float) -> float:
        """A rate limit bit: hold until its reset (``RATE_LIMIT_HOLD`` from now when unknown,
        never past ``RATE_LIMIT_MAX_HOLD``). Returns when the hold ends."""
        until = reset if reset is not None and reset > now else now + self.rules.rate_limit_hold
        until = min(until, now + self.rules.rate_limit_max_hold)
        if self.rate_limited_until is None or until > self.rate_limited_until:
            self.rate_limited_until = until
        return until

    def spent(self, cost: float | None, at: float) -> None:
        """A run that ended at ``at`` cost ``cost`` US dollars."""
        if not cost:
            return
        day = utc_day_start(at)
        if day > self._day:
            self._day, self.day_cost = day, 0.0
        if day == self._day:
            self.day_cost += cost

    def current(self, now: float) -> Hold | None:
        """What holds new runs back now, or None: one reason, the first in this order."""
        if self.disk_error is not None:
            return Hold(HoldKind.DISK, f"the project's files refuse writes ({self.disk_error}); "
                        "trying again", self._disk_probe_at)
        if self.rate_limited_until is not None and now < self.rate_limited_until:
            return Hold(HoldKind.RATE_LIMIT,
                        f"rate-limited until {clock_text(self.rate_limited_until)}",
                        self.rate_limited_until)
        limit = self.rules.daily_cost_limit
        if limit is not None and utc_day_start(now) == self._day and self.day_cost >= limit:
            return Hold(HoldKind.BUDGET, f"today's runs cost ${self.day_cost:.2f}, "
                        f"DAILY_COST_LIMIT_USD={limit:g}: until midnight UTC", self._day + DAY)
        return None
