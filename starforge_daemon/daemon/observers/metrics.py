"""Prometheus metrics (``METRICS_ADDRESS``): what waits and runs, how runs end, what they cost,
how long triggers wait for their run, and how the loop and the keeper are doing.

Counters and histograms follow the events, on the loop's thread (prometheus_client's are
thread-safe and cost a microsecond or so). The gauges of what waits and runs, the keeper and
the loop's lag are set by each heartbeat (``daemon/health.py``), once a second. Labels are
agent (or pool) names, outcomes, models and hold kinds: never tickets, triggers or run ids.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from starforge_daemon import __version__
from starforge_daemon.core import events as ev
from starforge_daemon.core.holds import HoldKind
from starforge_daemon.daemon.health import Pulse

RUN_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
DISPATCH_SECONDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
UNKNOWN_MODEL = "unknown"


def _amount(value: float | None) -> bool:
    """Something to add to a counter: a counter refuses a negative amount, and an agent's
    account is its own to get wrong."""
    return value is not None and 0 < value < math.inf


class DaemonMetrics:
    """The daemon's metrics in their own registry, and the observer that keeps them."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory...
        Info("starforge_build", "The daemon's version", registry=registry).info(
            {"version": __version__})
        self.queued = Gauge("starforge_triggers_queued", "Triggers waiting in the queue, per "
                            "agent or pool name", ["agent"], registry=registry)
        self.in_flight = Gauge("starforge_runs_in_flight", "Runs started and not yet finished",
                               registry=registry)
        self.finished = Counter("starforge_runs_finished", "Runs finished (every attempt), by "
                                "agent and outcome", ["agent", "outcome"], registry=registry)
        self.duration = Histogram("starforge_run_duration_seconds", "How long runs took",
                                  ["agent"], buckets=RUN_SECONDS, registry=registry)
        self.dispatch = Histogram("starforge_dispatch_latency_seconds", "From a trigger being "
                                  "queued to its run's spawn", ["agent"],
                                  buckets=DISPATCH_SECONDS, registry=registry)
        self.cost = Counter("starforge_cost_usd", "What runs cost by their own account, in US "
                            "dollars", ["agent", "model"], registry=registry)
        self.tokens = Counter("starforge_tokens", "Tokens runs used by their own account "
                              "(type: input or output)", ["agent", "model", "type"],
                              registry=registry)
        self.retries = Counter("starforge_retries", "Triggers queued again for another attempt",
                               ["agent"], registry=registry)
        self.holds = Counter("starforge_holds", "Spells of holding new runs back, by kind",
                             ["kind"], registry=registry)
        self.holding = Gauge("starforge_hold_active", "1 while new runs are held back for this "
                             "kind of reason", ["kind"], registry=registry)
        self.rejected = Counter("starforge_triggers_rejected", "Trigger files rejected to "
                                "processed/invalid/", registry=registry)
        self.loop_lag = Gauge("starforge_loop_lag_seconds", "How late the loop's latest "
                              "heartbeat came", registry=registry)
        self.keeper_up = Gauge("starforge_keeper_up", "1 while the daemon is connected to its "
                               "keeper", registry=registry)
        for kind in HoldKind:
            self.holds.labels(kind.value)
            self.holding.labels(kind.value)
        self._queued_at: dict[str, float] = {}  # trigger -> when it was queued (monotonic)
        self._targets: set[str] = set()  # agents and pools with a queued gauge

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.Queued():
                self._queued_at[event.trigger] = time.monotonic()
            case ev.Spawned():
                queued_at = self._queued_at.pop(event.trigger, None)
                if queued_at is not None:  # not for a retry, nor a run adopted at start
                    self.dispatch.labels(event.agent).observe(time.monotonic() - queued_at)
            case ev.Finished():
                self._finished(event)
            case ev.Retried():
                self.retries.labels(event.agent).inc()
            case ev.Rejected():
                self.rejected.inc()
                self._queued_at.pop(event.trigger, None)
            case ev.Vanished() | ev.Cancelled():
                self._queued_at.pop(event.trigger, None)
            case ev.Held():
                self.holds.labels(event.kind).inc()
                for kind in HoldKind:
                    self.holding.labels(kind.value).set(kind.value == event.kind)
            case ev.HoldLifted():
                for kind in HoldKind:
                    self.holding.labels(kind.value).set(0)

    def _finished(self, event: ev.Finished) -> None:
        self.finished.labels(event.agent, event.outcome).inc()
        self.duration.labels(event.agent).observe(event.duration_s)
        if event.trigger is not None:  # a run that could not start was never spawned
            self._queued_at.pop(event.trigger, None)
        model = event.model or UNKNOWN_MODEL
        if _amount(event.cost_usd):
            self.cost.labels(event.agent, model).inc(event.cost_usd)
        if _amount(event.tokens_in):
            self.tokens.labels(event.agent, model, "input").inc(event.tokens_in)
        if _amount(event.tokens_out):
            self.tokens.labels(event.agent, model, "output").inc(event.tokens_out)

    def sample(self, pulse: Pulse, queued: Mapping[str, int], in_flight: int) -> None:
        """The gauges, from a heartbeat on the loop's thread."""
        self.loop_lag.set(pulse.lag)
        self.keeper_up.set(pulse.keeper_up)
        self.in_flight.set(in_flight)
        for target in self._targets - queued.keys():
            self.queued.labels(target).set(0)
        for target, count in queued.items():
            self.queued.labels(target).set(count)
        self._targets.update(queued)
