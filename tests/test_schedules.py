"""Schedules: the pure rules (timing, next window, firing decision) with a fake clock, the
schedules file and its state on disk, and the daemon's timer driven by hand (no daemon)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starforge_daemon.core.events import Archived, Event, Publisher
from starforge_daemon.core.schedule_events import (
    ScheduleBlocked,
    ScheduleFired,
    ScheduleInvalid,
    SchedulesRead,
)
from starforge_daemon.core.schedules import (
    Blocked,
    Fire,
    Schedule,
    ScheduleError,
    ScheduleKind,
    ScheduleState,
    Wait,
    decide,
    fired,
    next_due,
    timing,
)
from starforge_daemon.daemon.periodic import Upkeep
from starforge_daemon.daemon.schedule_timer import ScheduleTimer
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.schedule_state import load_schedule_states, save_schedule_states
from starforge_daemon.store.schedules_file import read_schedules, schedule_from_table

T0 = 1_764_756_000.0  # 2025-12-03T10:00:00Z, on a five-minute boundary


def every(expression: str = "10m") -> Schedule:
    return schedule_from_table("board-check", {"agent": "orchestrator", "every": expression})


def cron(expression: str = "*/5 * * * *") -> Schedule:
    return schedule_from_table("sweep", {"agent": "janitor", "cron": expression})


# -- timing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "seconds", "shown"), [
    ("10m", 600, "10m"), ("90s", 90, "90s"), ("1.5h", 5400, "1.5h"), ("2d", 172800, "2d"),
    (30, 30, "30s"), (2.5, 2.5, "2.5s"),
])
def test_an_interval_is_a_duration_or_seconds(written: object, seconds: float, shown: str) -> None:
    when = timing(written, None)
    assert (when.kind, when.interval, when.expression) == (ScheduleKind.EVERY, seconds, shown)


@pytest.mark.parametrize(("every_", "cron_", "reason"), [
    (None, None, "exactly one of every"),
    ("10m", "* * * * *", "exactly one of every"),
    ("10", None, "like 90s, 30m"),
    ("1h30m", None, "like 90s, 30m"),
    ("0s", None, "like 90s, 30m"),
    (0.5, None, "shorter than 1 second"),
    (float("nan"), None, "shorter than 1 second"),
    (float("inf"), None, "longer than a year"),
    ("400d", None, "longer than a year"),
    (True, None, "not a duration"),
    ([], None, "not a duration"),
    (None, "61 * * * *", "not a cron expression"),
    (None, "every monday", "not a cron expression"),
    (None, 5, "not a cron expression"),
    (None, "0 0 30 2 *", "failed to find next date"),  # croniter: February 30th never comes
])
def test_a_timing_that_cannot_work_says_why(every_: object, cron_: object, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        timing(every_, cron_)


# -- when a schedule is due ------------------------------------------------------------------

def test_an_interval_counts_from_the_first_read_then_from_each_firing() -> None:
    schedule = every("10m")
    state = ScheduleState(since=T0)
    assert next_due(schedule, state) == T0 + 600
    assert decide(schedule, state, T0 + 599, pending=False) == Wait(T0 + 600)
    assert decide(schedule, state, T0 + 600, pending=False) == Fire(T0 + 600)
    later = fired(state, T0 + 600.25, "t1.trigger")
    assert later == ScheduleState(T0, T0 + 600.25, "t1.trigger")
    assert decide(schedule, later, T0 + 1000, pending=False) == Wait(T0 + 1200.25)


def test_cron_windows_come_from_croniter_in_utc() -> None:
    schedule = cron("*/5 * * * *")
    state = ScheduleState(since=T0 + 12)
    assert next_due(schedule, state) == T0 + 300
    after = fired(state, T0 + 301.5, "t1.trigger")  # fired a little after its window
    assert next_due(schedule, after) == T0 + 600
    daily = cron("30 9 * * *")
    assert next_due(daily, ScheduleState(since=T0)) == T0 - 1800 + 86400  # 09:30 UTC tomorrow


def test_cron_may_run_in_a_time_zone_of_its_own_summer_and_winter() -> None:
    paris = schedule_from_table("standup", {"agent": "a", "cron": "0 9 * * *",
                                            "timezone": "Europe/Paris"})
    winter, summer = 1_736_467_200.0, 1_752_105_600.0  # 2025-01-10 and 2025-07-10, 00:00Z
    assert next_due(paris, ScheduleState(since=winter)) == winter + 8 * 3600  # 09:00 CET
    assert next_due(paris, ScheduleState(since=summer)) == summer + 7 * 3600  # 09:00 CEST


@pytest.mark.parametrize("schedule", [every("10m"), cron("*/10 * * * *")], ids=["every", "cron"])
def test_windows_missed_while_the_daemon_was_down_fire_once(schedule: Schedule) -> None:
    state = ScheduleState(since=T0 - 600, last_fired=T0 - 600, trigger="old.trigger")
    back = T0 + 5 * 3600 + 7  # thirty windows later
    decision = decide(schedule, state, back, pending=False)
    assert decision == Fire(T0)  # the first window missed, once
    state = fired(state, back, "new.trigger")
    assert isinstance(decide(schedule, state, back + 1, pending=False), Wait)
    assert next_due(schedule, state) > back  # the next window is ahead, not one of the missed


def test_no_pile_up_while_its_last_trigger_is_pending() -> None:
    schedule = every("1m")
    state = fired(ScheduleState(since=T0), T0, "t1.trigger")
    for minute in range(1, 6):  # five windows pass while the first run goes on
        assert decide(schedule, state, T0 + 60 * minute, pending=True) == Blocked(T0 + 60)
    end = T0 + 330
    assert decide(schedule, state, end, pending=False) == Fire(T0 + 60)
    state = fired(state, end, "t2.trigger")
    assert decide(schedule, state, end + 59, pending=False) == Wait(end + 60)


# -- the schedules file ----------------------------------------------------------------------

def test_a_schedule_writes_a_checked_trigger_that_names_it() -> None:
    schedule = schedule_from_table("review", {
        "agent": "reviewer", "cron": "0 2 * * *", "action": "review", "message": "all of it",
        "context": {"scope": "main"}, "priority": 5, "from_agent": "clock"})
    document = json.loads(schedule.trigger.to_json())
    assert document == {"to_agent": "reviewer", "from_agent": "clock", "action": "review",
                        "message": "all of it", "context": {"scope": "main"}, "priority": 5,
                        "schedule": "review", "dedupe_key": "schedule:review"}


@pytest.mark.parametrize(("name", "table", "reason"), [
    ("x", {"agent": "a", "every": "1m", "evry": "1m"}, "unknown key evry"),
    ("x", {"every": "1m"}, "agent: required"),
    ("x", {"agent": "not an agent", "every": "1m"}, "agent: must be 1 to 64"),
    ("bad name", {"agent": "a", "every": "1m"}, "name must be 1 to 64"),
    ("x", "1m", "must be a table"),
    ("x", {"agent": "a", "every": "1m", "priority": "high"}, "priority: must be a whole number"),
    ("x", {"agent": "a", "every": "1m", "context": ["a"]}, "context: must be a JSON object"),
    ("x", {"agent": "a", "cron": "* * *"}, "not a cron expression"),
    ("x", {"agent": "a", "cron": "0 9 * * *", "timezone": "Europe"}, "not a time zone name"),
    ("x", {"agent": "a", "cron": "0 9 * * *", "timezone": "../../etc/passwd"}, "time zone"),
    ("x", {"agent": "a", "every": "1h", "timezone": "UTC"}, "timezone: goes with cron"),
])
def test_a_bad_schedule_says_why_in_one_line(name: str, table: object, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason) as caught:
        schedule_from_table(name, table)
    assert "\n" not in str(caught.value)


def test_one_bad_schedule_leaves_the_others_working(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text('[good]\nagent = "a"\nevery = "1m"\n\n[bad]\nagent = "b"\ncron = "nope"\n\n'
                    '[dated]\nagent = "c"\nevery = "1h"\ncontext = { when = 2025-01-01 }\n')
    found = read_schedules(path)
    assert [schedule.name for schedule in found.schedules] == ["good"]
    assert set(found.problems) == {"bad", "dated"}
    assert "write it as a string" in found.problems["dated"]
    assert found.names == {"good", "bad", "dated"}


def test_a_file_that_is_not_toml_is_one_error_and_no_file_is_no_schedules(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    assert read_schedules(path).schedules == ()
    path.write_text("[good\nagent = 1\n")
    with pytest.raises(ScheduleError, match=r"not valid TOML: .*line 1"):
        read_schedules(path)


def test_the_state_survives_a_round_trip_and_damage_starts_a_schedule_over(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    states = {"a": ScheduleState(T0, T0 + 60.125, "t.trigger"), "b": ScheduleState(T0)}
    save_schedule_states(path, states)
    assert load_schedule_states(path) == states
    path.write_text(json.dumps({"a": {"since": "yesterday"}, "b": 3, "c": {"since": None},
                                "d": {"since": "2025-12-03T10:00:00Z"}}))
    assert load_schedule_states(path) == {"d": ScheduleState(T0)}


# -- the daemon's timer, driven by hand with a fake clock ------------------------------------

class Clockwork:
    """A timer over a real project folder, its events collected, its upkeep run by hand."""

    def __init__(self, root: Path) -> None:
        self.paths = ProjectPaths(root)
        self.paths.ensure()
        self.seen: list[Event] = []
        self.events = Publisher()
        self.events.subscribe(self.seen.append)
        self.stopping = False
        self.upkeep = Upkeep(self.events)
        self.timer = ScheduleTimer(self.paths, self.events, 10.0, lambda: not self.stopping)
        self.timer.install(self.upkeep)
        self.events.subscribe(self.timer.observe)

    def write(self, text: str) -> None:
        self.paths.schedules_file.write_text(text)

    def run(self, now: float) -> None:
        self.upkeep.run(now)

    @property
    def next_at(self) -> float:
        return min(self.upkeep.due())

    def queued(self) -> list[str]:
        return sorted(path.name for path in self.paths.triggers.glob("*.trigger"))

    def of(self, kind: type) -> list[Event]:
        return [event for event in self.seen if isinstance(event, kind)]


def test_the_timer_fires_once_per_window_and_waits_for_its_last_trigger(tmp_path: Path) -> None:
    work = Clockwork(tmp_path)
    work.write('[tick]\nagent = "agent-a"\naction = "check"\nevery = "1m"\n')
    work.run(T0)
    assert work.of(SchedulesRead) == [SchedulesRead(str(work.paths.schedules_file), 1, 0)]
    assert work.queued() == [] and work.next_at == T0 + 10  # the next look at the file
    work.run(T0 + 59)
    assert work.next_at == T0 + 60
    work.run(T0 + 60)
    [first] = work.queued()
    assert json.loads((work.paths.triggers / first).read_text())["schedule"] == "tick"
    assert work.of(ScheduleFired)[0].due == "2025-12-03T10:01:00.000Z"
    (work.paths.triggers / first).rename(work.paths.running / first)  # its run starts
    for now in (T0 + 120, T0 + 130, T0 + 300):  # windows pass while it runs
        work.run(now)
    assert work.queued() == [] and len(work.of(ScheduleBlocked)) == 1
    (work.paths.running / first).rename(work.paths.processed / first)  # its run ended
    work.events.publish(Archived("agent-a", "run-1", "succeeded", "processed/" + first))
    assert work.next_at == 0.0  # the timer runs in this turn of the loop
    work.run(T0 + 301)
    [second] = work.queued()
    assert len(work.of(ScheduleFired)) == 2 and work.next_at == T0 + 311
    work.run(T0 + 305)
    assert work.queued() == [second]  # still queued: no second one
    (work.paths.triggers / second).unlink()  # ran and ended at once
    work.run(T0 + 311)
    assert work.queued() == [] and work.next_at == T0 + 321  # the missed windows are done
    work.run(T0 + 361)
    assert len(work.queued()) == 1  # a whole interval after the last firing


def test_a_restart_neither_fires_twice_nor_forgets_a_missed_window(tmp_path: Path) -> None:
    work = Clockwork(tmp_path)
    work.write('[tick]\nagent = "agent-a"\nevery = "1h"\n')
    work.run(T0)
    work.run(T0 + 3600)
    [first] = work.queued()
    (work.paths.triggers / first).unlink()  # ran and ended
    again = Clockwork(tmp_path)  # the daemon restarts ten minutes later
    again.run(T0 + 4200)
    assert again.queued() == [] and again.next_at == T0 + 4210
    down = Clockwork(tmp_path)  # ... and again after five hours down
    down.run(T0 + 9 * 3600)
    assert len(down.queued()) == 1 and len(down.of(ScheduleFired)) == 1


def test_an_edit_is_read_on_the_next_tick_and_a_broken_file_keeps_the_last_good_one(
        tmp_path: Path) -> None:
    work = Clockwork(tmp_path)
    work.write('[tick]\nagent = "agent-a"\nevery = "1m"\n')
    work.run(T0)
    work.write('[tick]\nagent = "agent-a"\nevery = "1m"\n[oops\n')
    work.run(T0 + 10)
    [broken] = work.of(ScheduleInvalid)
    assert "not valid TOML" in broken.msg and "keeping the 1 schedules" in broken.msg
    work.run(T0 + 60)
    assert len(work.queued()) == 1  # the schedule read before still fires
    work.write('[tick]\nagent = "agent-a"\nevery = "1m"\n[other]\nagent = "b"\ncron = "x"\n')
    work.run(T0 + 70)
    assert [event.schedule for event in work.of(ScheduleInvalid)] == [None, "other"]
    work.write('[new]\nagent = "agent-b"\nevery = "1h"\n')
    work.run(T0 + 80)
    assert set(load_schedule_states(work.paths.schedules_state)) == {"new"}  # tick is gone


def test_a_stopping_daemon_fires_nothing(tmp_path: Path) -> None:
    work = Clockwork(tmp_path)
    work.write('[tick]\nagent = "agent-a"\nevery = "1m"\n')
    work.run(T0)
    work.stopping = True
    work.run(T0 + 3600)
    assert work.queued() == []


def test_an_interval_shorter_than_the_check_wakes_the_loop_itself(tmp_path: Path) -> None:
    work = Clockwork(tmp_path)  # it looks at the file every 10 s
    work.write('[tick]\nagent = "agent-a"\nevery = "2s"\n')
    work.run(T0)
    assert work.next_at == T0 + 2
    work.run(T0 + 2)
    [first] = work.queued()
    (work.paths.triggers / first).unlink()  # ran and ended
    assert work.next_at == T0 + 4


def test_a_cron_whose_times_are_past_turns_itself_off_and_not_the_others(tmp_path: Path) -> None:
    gone = cron("0 0 1 1 * 0 2020")  # croniter's seventh field: the year
    with pytest.raises(ScheduleError, match="names no time after 2025-12-03T10:00:00Z"):
        next_due(gone, ScheduleState(since=T0))
    work = Clockwork(tmp_path)
    work.write('[gone]\nagent = "a"\ncron = "0 0 1 1 * 0 2020"\n\n'
               '[tick]\nagent = "agent-a"\nevery = "1m"\n')
    work.run(T0)
    [off] = work.of(ScheduleInvalid)
    assert off.schedule == "gone" and "it is off" in off.msg
    work.run(T0 + 60)
    assert len(work.queued()) == 1 and len(work.of(ScheduleInvalid)) == 1
