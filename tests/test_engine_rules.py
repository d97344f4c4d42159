"""The engine's rules on scripted histories: fake clock, fake runner, files in tmp_path."""

from __future__ import annotations

import json

from test_engine import FakeGauge, FakeRunner, exited, result, setup, started, write

from starforge_daemon.core.events import (
    Adopted,
    Finished,
    Held,
    HoldLifted,
    KillEscalated,
    Paused,
    Problem,
    Recovered,
    Requeued,
    ShuttingDown,
    Spawned,
    StopRequested,
    TimedOut,
)
from starforge_daemon.core.models import RunExit
from starforge_daemon.daemon.logfile import render_line
from starforge_daemon.daemon.observers.eventlog import Level, log_line
from starforge_daemon.runtime.api import Exited, LaunchSpec

__all__ = ["setup"]  # the fixture, shared with test_engine


RESULT_KEYS = ["trigger", "id", "outcome", "reason", "exit_code", "run_id", "agent", "pool", "attempt",
               "ticket", "action", "from_agent", "pid", "started_at", "ended_at", "duration_s",
               "log", "cpu_seconds", "peak_memory_bytes", "session_id", "model", "turns",
               "tokens_in", "tokens_out", "cache_read_tokens", "cache_creation_tokens", "cost_usd",
               "result_text", "permission_denials", "api_error_status", "terminal_reason",
               "skipped_lines"]


def names(runner: FakeRunner) -> list[str]:
    return [spec.env["STARFORGE_TRIGGER_FILE"].rsplit("/", 1)[1] for spec in runner.launched]


def test_a_retry_waits_in_running_for_its_backoff_and_runs_again_from_there(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "flaky.trigger", "a", 1)
    engine = make(MAX_RETRIES=1, RETRY_BACKOFF=30)
    first = runner.launched[0]
    engine.apply([started(first, 5), exited(first, 3, clock.now)], clock.now)
    record = json.loads((paths.attempts / "flaky.trigger.json").read_text())
    assert list(record) == ["trigger", "attempts", "not_before"]
    assert list(record["attempts"][0]) == RESULT_KEYS
    assert list(paths.running.iterdir()) == [paths.running / "flaky.trigger"]
    assert not list(paths.triggers.glob("*.trigger")), "no trip through the trigger folder"
    assert len(runner.launched) == 1 and engine.queue.next_due() == clock.now + 30
    clock.now += 30
    engine.apply([], clock.now)
    second = runner.launched[1]
    assert second.env["STARFORGE_TRIGGER_FILE"] == str(paths.running / "flaky.trigger")
    engine.apply([started(second, 6), exited(second, 3, clock.now)], clock.now)
    archived = result(paths, paths.failed, "flaky.trigger")
    assert [attempt["attempt"] for attempt in archived["attempts"]] == [1, 2]
    assert list(archived) == [*RESULT_KEYS, "attempts", "archived_at", "archived_as"], \
        "the file format holds"
    assert list(archived["attempts"][0]) == RESULT_KEYS
    assert not list(paths.attempts.iterdir())


def test_a_retry_waiting_when_the_daemon_dies_is_found_by_the_next_one(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "flaky.trigger", "a", 1)
    engine = make(MAX_RETRIES=1, RETRY_BACKOFF=30)
    first = runner.launched[0]
    engine.apply([started(first, 5), exited(first, 3, clock.now)], clock.now)
    engine.apply([], clock.now)
    again = make(MAX_RETRIES=1, RETRY_BACKOFF=30)  # the first one vanished without a word
    assert len(runner.launched) == 1, "the backoff still holds after the restart"
    clock.now += 30
    again.apply([], clock.now)
    assert names(runner) == ["flaky.trigger", "flaky.trigger"]
    assert runner.launched[1].env["STARFORGE_TRIGGER_FILE"] == str(paths.running / "flaky.trigger")


def test_a_stop_before_the_process_is_known_is_asked_at_once_and_escalates(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    engine = make(AGENT_KILL_GRACE=5)
    run_id = runner.launched[0].run_id
    answers: list[dict] = []
    engine.submit({"op": "stop-agent", "agent": "a"}, answers.append)
    engine.apply([], clock.now)
    assert answers[0]["ok"] and runner.stops == [(run_id, False)], "the runner sends it later"
    engine.apply([started(runner.launched[0], 9)], clock.now)
    assert runner.stops == [(run_id, False)], "asked once"
    clock.now += 5
    engine.apply([], clock.now)
    assert runner.stops == [(run_id, False), (run_id, True)]
    engine.apply([exited(runner.launched[0], -9, clock.now)], clock.now)
    assert result(paths, paths.failed, "a.trigger")["outcome"] == "killed"


def test_slots_show_the_ledger_busy_with_its_pid_then_idle_with_the_last_run(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    engine = make()
    spec = runner.launched[0]
    engine.apply([started(spec, 77)], clock.now + 1)
    clock.now += 1
    engine.apply([], clock.now)
    slot = json.loads(paths.slots_file.read_text())["a"]
    assert slot["status"] == "busy" and slot["pid"] == "77" and slot["run_id"] == spec.run_id
    engine.apply([exited(spec, 0, clock.now)], clock.now)
    clock.now += 1
    engine.apply([], clock.now)
    slot = json.loads(paths.slots_file.read_text())["a"]
    assert slot["status"] == "idle" and slot["pid"] is None
    assert slot["last_run_id"] == spec.run_id and slot["last_outcome"] == "succeeded"


def test_pools_go_round_robin_and_a_paused_member_is_skipped(setup) -> None:
    paths, clock, runner, make = setup
    for number in range(3):
        write(paths, f"p{number}.trigger", "dev", number)
    engine = make(PARALLEL_DAEMON=True, AGENT_POOLS="dev=dev-a,dev-b")
    assert [spec.env["STARFORGE_AGENT"] for spec in runner.launched] == ["dev-a", "dev-b"]
    answers: list[dict] = []
    engine.submit({"op": "pause", "agent": "dev-a"}, answers.append)
    first = runner.launched[0]
    engine.apply([started(first, 1), exited(first, 0, clock.now)], clock.now)
    assert len(runner.launched) == 2, "dev-a is paused and dev-b busy: p2 waits"
    engine.submit({"op": "resume", "agent": "dev-a"}, answers.append)
    engine.apply([], clock.now)
    assert runner.launched[2].env["STARFORGE_AGENT"] == "dev-a"


def test_cancel_archives_a_waiting_trigger_with_its_reason(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a1.trigger", "a", 1)
    write(paths, "a2.trigger", "a", 2)
    engine = make()
    answers: list[dict] = []
    engine.submit({"op": "cancel", "trigger": "a2.trigger"}, answers.append)
    engine.apply([], clock.now)
    assert answers[0]["ok"] and result(paths, paths.failed, "a2.trigger")["outcome"] == "cancelled"
    engine.apply([exited(runner.launched[0], 0, clock.now)], clock.now)
    assert names(runner) == ["a1.trigger"]


def test_memory_short_holds_new_runs_once_per_spell_and_lets_them_go_after(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    gauge, seen = FakeGauge(), []
    gauge.reason = "available memory 3.0% is below MIN_FREE_MEMORY_PERCENT=10"
    engine = make(gauge=gauge, observer=seen.append)
    clock.now += 1
    engine.apply([], clock.now)
    assert runner.launched == [] and engine.state(clock.now).held_back == gauge.reason
    assert [event for event in seen if isinstance(event, Held)] == [Held(gauge.reason, 1, "memory")]
    assert engine._next_wakeup(clock.now) <= clock.now + 1, "the gauge is read again soon"
    gauge.reason = None
    clock.now += 1
    engine.apply([], clock.now)
    assert names(runner) == ["a.trigger"] and engine.state(clock.now).held_back is None
    assert sum(isinstance(event, HoldLifted) for event in seen) == 1


def keeper_started(spec: LaunchSpec, pid: int) -> None:
    """What the keeper appends to the run's journal once it has spawned the agent."""
    with spec.journal.open("a") as journal:
        journal.write(json.dumps({"run_id": spec.run_id,
                                  "started": {"pid": pid, "start": 1.0}}) + "\n")


def test_a_restarted_daemon_adopts_the_runs_its_runner_still_holds(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    write(paths, "a2.trigger", "a", 2)
    start = clock.now
    make(AGENT_TIMEOUT=60, AGENT_KILL_GRACE=5)
    spec = runner.launched[0]
    keeper_started(spec, 31)
    runner.holding.add(spec.run_id)
    seen: list = []
    clock.now += 10
    again = make(AGENT_TIMEOUT=60, AGENT_KILL_GRACE=5, observer=seen.append)
    assert Adopted("a", spec.run_id, 31) in seen
    assert len(runner.launched) == 1, "a is still busy with the adopted run"
    adopted = again.ledger.of_agent("a")
    assert adopted.handle.pid == 31 and adopted.run.deadline == start + 60, \
        "the adopted run keeps its deadline"
    clock.now += 49
    again.apply([], clock.now)
    assert runner.stops == []
    again.apply([exited(spec, 0, clock.now)], clock.now)
    assert result(paths, paths.processed, "a.trigger")["outcome"] == "succeeded"
    assert names(runner) == ["a.trigger", "a2.trigger"]


def test_a_run_its_runner_does_not_hold_is_finished_as_lost_and_not_run_twice(setup) -> None:
    paths, _clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    make()
    keeper_started(runner.launched[0], 31)
    seen: list = []
    make(observer=seen.append)
    assert result(paths, paths.failed, "a.trigger")["outcome"] == "lost"
    assert Recovered("a", runner.launched[0].run_id, None) in seen and len(runner.launched) == 1


def test_timeout_then_kill_are_events_and_the_finish_is_a_timeout_line(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "t.trigger", "slow", 1)
    seen: list = []
    engine = make(AGENT_TIMEOUT=30, AGENT_KILL_GRACE=5, observer=seen.append)
    spec = runner.launched[0]
    engine.apply([started(spec, 42)], clock.now)
    clock.now += 35
    engine.apply([], clock.now)  # past the deadline and the grace: SIGTERM, then SIGKILL next
    clock.now += 5
    engine.apply([], clock.now)
    engine.apply([exited(spec, -9, clock.now)], clock.now)
    kinds = [type(event).__name__ for event in seen
             if isinstance(event, Spawned | TimedOut | KillEscalated | Finished)]
    assert kinds == ["Spawned", "TimedOut", "KillEscalated", "Finished"]
    assert runner.stops == [(spec.run_id, False), (spec.run_id, True)]
    finished = next(event for event in seen if isinstance(event, Finished))
    assert finished.outcome == "timed_out"
    assert log_line(finished)[:2] == (Level.WARNING, "TIMEOUT")


def test_stop_agent_terminates_its_run_and_kills_it_after_the_grace(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    seen: list = []
    engine = make(AGENT_KILL_GRACE=5, observer=seen.append)
    spec = runner.launched[0]
    engine.apply([started(spec, 8)], clock.now)
    answers: list[dict] = []
    engine.submit({"op": "stop-agent", "agent": "a"}, answers.append)
    engine.submit({"op": "stop-agent", "agent": "b"}, answers.append)
    engine.apply([], clock.now)
    assert answers == [{"ok": True, "run_id": spec.run_id, "trigger": "a.trigger"},
                       {"ok": False, "error": "agent b has no run going"}]
    assert StopRequested("a", spec.run_id) in seen and runner.stops == [(spec.run_id, False)]
    clock.now += 5
    engine.apply([], clock.now)
    assert runner.stops[-1] == (spec.run_id, True)
    engine.apply([exited(spec, -9, clock.now)], clock.now)
    archived = result(paths, paths.failed, "a.trigger")
    assert archived["outcome"] == "killed" and "operator" in archived["reason"]


def test_pause_all_outlives_a_restart_and_resume_lets_the_queue_go(setup) -> None:
    paths, clock, runner, make = setup
    seen: list = []
    engine = make(observer=seen.append)
    answers: list[dict] = []
    engine.submit({"op": "pause"}, answers.append)
    engine.apply([], clock.now)
    write(paths, "a.trigger", "a", 1)
    again = make()
    assert runner.launched == [] and json.loads(paths.paused_file.read_text())["all"]
    again.submit({"op": "resume"}, answers.append)
    again.apply([], clock.now)
    assert names(runner) == ["a.trigger"] and Paused("all") in seen
    assert [answer["ok"] for answer in answers] == [True, True]


def test_event_log_lines_keep_their_words_levels_and_keys() -> None:
    def line(event: object) -> str:
        level, word, keys = log_line(event)
        return render_line("T", level.value, word, keys)

    assert line(Finished("a", "52", "failed", 3, "exit 3", "r1", 1, 2.5, start_failed=False)) \
        == "T WARNING FINISH agent=a ticket=52 outcome=failed exit_code=3 reason=\"exit 3\" " \
           "run=r1 attempt=1 duration_s=2.5"
    assert line(Finished("a", None, "failed", None, "cannot start: x", "r1", 1, 0.0,
                         start_failed=True)).startswith("T ERROR   FINISH agent=a outcome=failed")
    assert line(Finished("a", None, "succeeded", 0, None, "r1", 1, 1.0, start_failed=False)) \
        .startswith("T INFO    FINISH")
    assert line(Spawned("a", "52", 42, "r1", "x.trigger")) \
        == "T INFO    SPAWNED agent=a ticket=52 pid=42 run=r1 trigger=x.trigger"
    assert line(ShuttingDown("stop", 1, 2, handoff=False)) \
        == "T INFO    SHUTDOWN stopping agents mode=stop running=1 queued=2"
    assert line(Problem(msg="upkeep failed", task="tidy", error="boom")) \
        == "T ERROR   ERROR upkeep failed task=tidy error=boom"
    assert line(Requeued("x.trigger")) \
        == "T WARNING RECOVERY trigger was claimed but never started; queued again trigger=x.trigger"


def test_a_run_the_kernel_killed_for_its_memory_limit_ends_as_oom_with_its_usage(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "big.trigger", "a", 1)
    engine = make(MAX_RETRIES=3)
    spec = runner.launched[0]
    ended = RunExit(ended_at=clock.now, exit_code=-9, cpu_seconds=1.25,
                    peak_memory_bytes=512 << 20, oom_kills=1)
    engine.apply([started(spec, 5), Exited(spec.run_id, ended)], clock.now)
    saved = result(paths, paths.processed / "failed", "big.trigger")
    assert saved["outcome"] == "oom" and "memory limit" in saved["reason"]
    assert saved["cpu_seconds"] == 1.25 and saved["peak_memory_bytes"] == 512 << 20
    assert len(runner.launched) == 1, "the same limit would kill it again: no retry"
