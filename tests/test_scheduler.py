"""Timeout and kill escalation decisions on the ledger's run states, on a fake clock."""

from __future__ import annotations

from starforge_daemon.core.ledger import Launching, Ledger, StopReason
from starforge_daemon.core.models import ProcessIdentity, Run
from starforge_daemon.core.scheduler import Kill, Terminate, enforce, free_capacity, next_deadline


def run(run_id: str, started: float, timeout: float, agent: str = "a") -> Run:
    return Run(run_id=run_id, agent=agent, trigger_name="t", trigger_path="/t",
               log_path="/l", started_at=started, timeout=timeout)


def test_terminate_at_deadline_then_kill_after_grace() -> None:
    ledger = Ledger()
    ledger.add(Launching(run("r", started=100.0, timeout=10.0)))
    ledger.started("r", ProcessIdentity(pid=5, create_time=1.0))
    assert enforce(ledger, now=109.9, grace=2.0) == []
    assert next_deadline(ledger, grace=2.0) == 110.0
    assert enforce(ledger, now=110.0, grace=2.0) == [Terminate("r", StopReason.TIMEOUT)]
    ledger.stop("r", StopReason.TIMEOUT, 110.0)
    assert enforce(ledger, now=111.0, grace=2.0) == []
    assert next_deadline(ledger, grace=2.0) == 112.0
    assert enforce(ledger, now=112.0, grace=2.0) == [Kill("r")]
    ledger.kill("r")
    assert enforce(ledger, now=500.0, grace=2.0) == []
    assert next_deadline(ledger, grace=2.0) is None


def test_a_run_stopped_before_its_process_is_known_keeps_stopping_once_it_is() -> None:
    ledger = Ledger()
    ledger.add(Launching(run("r", started=100.0, timeout=10.0)))
    ledger.stop("r", StopReason.OPERATOR, 101.0)
    state = ledger.started("r", ProcessIdentity(pid=5, create_time=1.0))
    assert state is not None and state.handle is not None and ledger.is_busy("a")
    assert next_deadline(ledger, grace=2.0) == 103.0
    ledger.remove("r")
    assert not ledger.is_busy("a") and len(ledger) == 0


def test_capacity() -> None:
    assert free_capacity(4, 1, accepting=True) == 3
    assert free_capacity(4, 6, accepting=True) == 0
    assert free_capacity(4, 0, accepting=False) == 0
