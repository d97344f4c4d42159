"""The engine's rules on scripted histories: fake clock, fake runner, files in tmp_path."""

from __future__ import annotations

import json
import signal

from test_engine import FakeRunner, exited, result, setup, started, write

__all__ = ["setup"]  # the fixture, shared with test_engine


def names(runner: FakeRunner) -> list[str]:
    return [spec.env["STARFORGE_TRIGGER_FILE"].rsplit("/", 1)[1] for spec in runner.launched]


def test_a_retry_waits_in_running_for_its_backoff_and_runs_again_from_there(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "flaky.trigger", "a", 1)
    engine = make(MAX_RETRIES=1, RETRY_BACKOFF=30)
    first = runner.launched[0]
    engine.apply([started(first, 5), exited(first, 3, clock.now)], clock.now)
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


def test_a_stop_before_the_process_is_known_is_sent_once_it_is(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    engine = make(AGENT_KILL_GRACE=5)
    answers: list[dict] = []
    engine.submit({"op": "stop-agent", "agent": "a"}, answers.append)
    engine.apply([], clock.now)
    assert answers[0]["ok"] and runner.signals == [], "no process to signal yet"
    engine.apply([started(runner.launched[0], 9)], clock.now)
    assert runner.signals == [(9, signal.SIGTERM)]
    clock.now += 5
    engine.apply([], clock.now)
    assert runner.signals == [(9, signal.SIGTERM), (9, signal.SIGKILL)]
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
