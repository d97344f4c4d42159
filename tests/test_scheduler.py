"""Timeout and kill escalation decisions, on a fake clock."""

from __future__ import annotations

from starforge_daemon.core.models import Run
from starforge_daemon.core.scheduler import (
    ActiveRun,
    Kill,
    StopReason,
    Terminate,
    enforce,
    free_capacity,
    next_deadline,
)


def active(run_id: str, started: float, timeout: float) -> ActiveRun:
    return ActiveRun(Run(run_id=run_id, agent="a", trigger_name="t", trigger_path="/t",
                         log_path="/l", started_at=started, timeout=timeout))


def test_terminate_at_deadline_then_kill_after_grace() -> None:
    run = active("r", started=100.0, timeout=10.0)
    assert enforce([run], now=109.9, grace=2.0) == []
    assert next_deadline([run], grace=2.0) == 110.0
    assert enforce([run], now=110.0, grace=2.0) == [Terminate("r", StopReason.TIMEOUT)]
    run.term_sent_at = 110.0
    assert enforce([run], now=111.0, grace=2.0) == []
    assert next_deadline([run], grace=2.0) == 112.0
    assert enforce([run], now=112.0, grace=2.0) == [Kill("r")]
    run.kill_sent = True
    assert enforce([run], now=500.0, grace=2.0) == []
    assert next_deadline([run], grace=2.0) is None


def test_capacity() -> None:
    assert free_capacity(4, 1, accepting=True) == 3
    assert free_capacity(4, 6, accepting=True) == 0
    assert free_capacity(4, 0, accepting=False) == 0
