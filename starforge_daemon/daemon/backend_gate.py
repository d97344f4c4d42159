"""New runs wait while the runs' backend does not answer (``RUNNER=slurm``: its controller), as
they wait while memory is short: the runs in flight go on, and are reaped once it answers."""

from __future__ import annotations

from starforge_daemon.core.holds import HoldKind
from starforge_daemon.daemon.load import MemoryGauge
from starforge_daemon.daemon.starter import Gauge
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.settings import RunnerKind, Settings

UNANSWERED = "the Slurm controller does not answer"


class BackendGate:
    """The memory gauge, behind a backend that must answer; ``kind`` says which holds."""

    def __init__(self, gauge: Gauge, runner: Runner) -> None:
        self._gauge = gauge
        self._runner = runner
        self.kind = HoldKind.MEMORY

    def shortage(self, now: float) -> str | None:
        if not self._runner.reachable:
            self.kind = HoldKind.RUNNER
            return UNANSWERED
        self.kind = HoldKind.MEMORY
        return self._gauge.shortage(now)


def dispatch_gauge(settings: Settings, runner: Runner) -> Gauge:
    """What holds new runs back besides the engine's own holds. The local keeper is started
    again by the next launch, so only a Slurm controller is waited for."""
    memory = MemoryGauge(settings.MIN_FREE_MEMORY_PERCENT)
    return BackendGate(memory, runner) if settings.RUNNER is RunnerKind.SLURM else memory
