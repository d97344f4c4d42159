"""Timeout and kill escalation decisions on the ledger's run states, on a fake clock."""

from __future__ import annotations

from starforge_daemon.core.deadlines import Deadlines
from starforge_daemon.core.holds import DAY, HoldKind, HoldRules, Holds, utc_day_start
from starforge_daemon.core.ledger import Launching, Ledger, StopReason
from starforge_daemon.core.models import ProcessIdentity, Run
from starforge_daemon.core.scheduler import (
    REPORT_DELAY,
    Kill,
    Terminate,
    Watchdogs,
    free_capacity,
)
from starforge_daemon.core.streams import Progress
from starforge_daemon.core.streams.reports import LiveProgress


def run(run_id: str, started: float, timeout: float, agent: str = "a") -> Run:
    return Run(run_id=run_id, agent=agent, trigger_name="t", trigger_path="/t",
               log_path="/l", started_at=started, timeout=timeout)


def test_terminate_at_deadline_then_kill_after_grace() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, grace=2.0, dogs=None)
    ledger.add(Launching(run("r", started=100.0, timeout=10.0)))
    ledger.started("r", ProcessIdentity(pid=5, start=1.0))
    assert deadlines.decide(now=109.9) == []
    assert deadlines.next() == 110.0
    assert deadlines.decide(now=110.0) == [Terminate("r", StopReason.TIMEOUT)]
    ledger.stop("r", StopReason.TIMEOUT, 110.0)
    assert deadlines.decide(now=111.0) == []
    assert deadlines.next() == 112.0
    assert deadlines.decide(now=112.0) == [Kill("r")]
    ledger.kill("r")
    assert deadlines.decide(now=500.0) == []
    assert deadlines.next() is None


def test_a_run_stopped_before_its_process_is_known_keeps_stopping_once_it_is() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, grace=2.0, dogs=None)
    ledger.add(Launching(run("r", started=100.0, timeout=10.0)))
    ledger.stop("r", StopReason.OPERATOR, 101.0)
    state = ledger.started("r", ProcessIdentity(pid=5, start=1.0))
    assert state is not None and state.handle is not None and ledger.is_busy("a")
    assert deadlines.next() == 103.0
    ledger.remove("r")
    assert not ledger.is_busy("a") and len(ledger) == 0
    assert deadlines.next() is None


def test_each_due_decision_is_made_once_and_the_earliest_run_comes_first() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, grace=2.0, dogs=None)
    for number, timeout in enumerate((30.0, 10.0, 20.0)):
        ledger.add(Launching(run(f"r{number}", started=100.0, timeout=timeout,
                                 agent=f"a{number}")))
    assert deadlines.next() == 110.0
    ledger.remove("r1")  # it ended before its deadline
    assert deadlines.next() == 120.0
    assert deadlines.decide(now=125.0) == [Terminate("r2", StopReason.TIMEOUT)]
    assert deadlines.decide(now=125.0) == []  # not acted on: still decided once
    assert deadlines.next() == 130.0


def test_old_entries_do_not_pile_up_behind_an_earlier_run() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, grace=2.0, dogs=Watchdogs(first_output=5.0, stall=10.0))
    ledger.add(Launching(run("quiet", started=100.0, timeout=10_000.0, agent="a")))
    ledger.add(Launching(run("chatty", started=100.0, timeout=10_000.0, agent="b")))
    for second in range(1000):
        ledger.report("chatty", live(last_event=100.0 + second))
        assert deadlines.next() == 105.0  # the quiet run's first-output watchdog
    assert len(deadlines._heap) <= 2 * 2 + 64
    ledger.remove("quiet")
    assert deadlines.next() == 100.0 + 999 + 10.0 + REPORT_DELAY


def test_capacity() -> None:
    assert free_capacity(4, 1, accepting=True) == 3
    assert free_capacity(4, 6, accepting=True) == 0
    assert free_capacity(4, 0, accepting=False) == 0


def live(last_event: float | None, result_at: float | None = None,
         cost: float | None = None) -> LiveProgress:
    progress = Progress(phase="thinking", tool=None, tool_input=None, turns=0, tokens_in=0,
                        tokens_out=0, cache_read_tokens=0, cache_creation_tokens=0,
                        cost_usd=cost, last_text=None, events=1, skipped=0,
                        rate_limit_until=None)
    return LiveProgress(progress, last_event, result_at)


def test_the_watchdogs_read_the_runs_latest_progress() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, 2.0, Watchdogs(first_output=5.0, stall=10.0, result_grace=3.0,
                                                 max_cost=1.0))
    ledger.add(Launching(run("r", started=100.0, timeout=1000.0)))

    assert deadlines.next() == 105.0  # no event yet
    assert deadlines.decide(105.0) == [Terminate("r", StopReason.NO_OUTPUT)]
    ledger.report("r", live(last_event=104.0))
    assert deadlines.decide(105.0) == []
    assert deadlines.next() == 104.0 + 10.0 + REPORT_DELAY
    assert deadlines.decide(115.0) == [Terminate("r", StopReason.STALLED)]
    ledger.report("r", live(last_event=110.0, result_at=110.0))
    assert deadlines.decide(113.0) == [Terminate("r", StopReason.LINGERING)]
    ledger.report("r", live(last_event=110.0, cost=1.5))
    assert deadlines.decide(110.5) == [Terminate("r", StopReason.OVER_BUDGET)]


def test_a_run_read_as_text_is_stopped_by_its_timeout_alone() -> None:
    ledger = Ledger()
    deadlines = Deadlines(ledger, 2.0, None)
    ledger.add(Launching(run("r", started=100.0, timeout=1000.0)))
    ledger.report("r", live(last_event=110.0, cost=1.5))
    assert deadlines.decide(500.0) == []
    assert deadlines.next() == 1100.0


def test_a_rate_limit_holds_until_its_reset_within_the_cap() -> None:
    holds = Holds(HoldRules(rate_limit_hold=60.0, rate_limit_max_hold=600.0,
                            daily_cost_limit=None))
    assert holds.current(1000.0) is None
    assert holds.rate_limited(None, 1000.0) == 1060.0  # no reset time: RATE_LIMIT_HOLD
    assert holds.rate_limited(5000.0, 1000.0) == 1600.0  # never past RATE_LIMIT_MAX_HOLD
    hold = holds.current(1000.0)
    assert hold is not None and hold.kind is HoldKind.RATE_LIMIT and hold.ends_at == 1600.0
    assert hold.reason.startswith("rate-limited until")
    assert holds.current(1600.0) is None


def test_refused_writes_back_off_by_failed_tries_not_by_every_refusal() -> None:
    holds = Holds(HoldRules(60.0, 600.0, daily_cost_limit=None))
    assert holds.disk_refused("Read-only file system", 100.0)  # the spell begins
    for _ in range(6):  # the history, the slot file, ... refused in the same turn
        assert not holds.disk_refused("Read-only file system", 100.0)
    hold = holds.current(100.0)
    assert hold is not None and hold.kind is HoldKind.DISK and hold.ends_at == 101.0
    assert not holds.probe_due(100.9) and holds.probe_due(101.0)
    assert not holds.disk_refused("Read-only file system", 101.0)  # the try failed: doubled
    assert holds.current(101.0).ends_at == 103.0
    holds.disk_accepted()
    assert holds.current(103.0) is None and not holds.probe_due(103.0)


def test_the_daily_budget_holds_until_midnight_utc() -> None:
    holds = Holds(HoldRules(60.0, 600.0, daily_cost_limit=1.0))
    day = utc_day_start(1_770_000_000.0)
    holds.spent(0.6, day + 100)
    assert holds.current(day + 200) is None
    holds.spent(0.5, day + 300)
    hold = holds.current(day + 400)
    assert hold is not None and hold.kind is HoldKind.BUDGET and hold.ends_at == day + DAY
    assert "DAILY_COST_LIMIT_USD=1" in hold.reason
    assert holds.current(day + DAY) is None  # a new day
    holds.spent(0.1, day + DAY + 5)
    assert holds.day_cost == 0.1
