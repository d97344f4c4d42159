"""Dependencies, hand-off and dedupe keys in the engine, on scripted histories: fake clock, fake
runner, real files in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_engine import FakeRunner, exited, result, setup, started
from test_engine_rules import keeper_started

from starforge_daemon.runtime.api import LaunchSpec
from starforge_daemon.store.paths import ProjectPaths

__all__ = ["setup"]  # the fixture, shared with test_engine


def write(paths: ProjectPaths, trigger_id: str, agent: str, stamp: int, **fields) -> str:
    name = f"{trigger_id}.trigger"
    path = paths.triggers / name
    path.write_text(json.dumps({"to_agent": agent, "id": trigger_id, **fields}))
    os.utime(path, ns=(stamp, stamp))
    return name


def launched_ids(runner: FakeRunner) -> list[str]:
    return [spec.env["STARFORGE_TRIGGER_FILE"].rsplit("/", 1)[1].removesuffix(".trigger")
            for spec in runner.launched]


def finish(engine, spec: LaunchSpec, code: int, now: float, pid: int = 10) -> None:
    engine.apply([started(spec, pid), exited(spec, code, now)], now)


def test_a_chain_runs_in_order_across_a_restart_and_hands_results_on(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "implement", "dev", 1)
    write(paths, "test", "tester", 2, after=["implement"])
    write(paths, "review", "reviewer", 3, after=["test"])
    engine = make(PARALLEL_DAEMON="true")
    assert launched_ids(runner) == ["implement"], "the others wait, though their agents are free"
    assert engine.state(clock.now).queued == 2
    finish(engine, runner.launched[0], 0, clock.now)
    assert launched_ids(runner) == ["implement", "test"]
    handoff = runner.launched[1].env["STARFORGE_UPSTREAM_RESULTS"]
    [upstream] = json.loads(Path(handoff).read_text())
    assert upstream["id"] == "implement" and upstream["agent"] == "dev"
    assert upstream["outcome"] == "succeeded" and upstream["exit_code"] == 0
    keeper_started(runner.launched[1], 11)
    runner.holding.add(runner.launched[1].run_id)
    again = make(PARALLEL_DAEMON="true")  # the first daemon vanished while "test" ran
    assert launched_ids(runner) == ["implement", "test"], "review still waits after the restart"
    again.apply([exited(runner.launched[1], 0, clock.now)], clock.now)
    assert launched_ids(runner) == ["implement", "test", "review"]
    assert result(paths, paths.processed, "test.trigger")["id"] == "test"


@pytest.mark.parametrize(("policy", "folder", "outcome"), [
    ("fail", "failed", "failed"), ("skip", "failed", "skipped"), ("run", None, None)])
def test_a_fan_in_with_one_failure_follows_its_policy(setup, policy: str, folder: str | None,
                                                      outcome: str | None) -> None:
    paths, clock, runner, make = setup
    for number in (1, 2, 3):
        write(paths, f"part{number}", f"dev{number}", number)
    write(paths, "merge", "integrator", 9, after=["part1", "part2", "part3"],
          on_upstream_failure=policy)
    engine = make(PARALLEL_DAEMON="true")
    parts = {spec.env["STARFORGE_AGENT"]: spec for spec in runner.launched}
    finish(engine, parts["dev1"], 0, clock.now)
    finish(engine, parts["dev2"], 4, clock.now)
    assert len(runner.launched) == 3, "one upstream is still running"
    finish(engine, parts["dev3"], 0, clock.now)
    if folder is None:
        assert launched_ids(runner)[-1] == "merge"
        return
    assert len(runner.launched) == 3, "never run"
    archived = result(paths, paths.processed / folder, "merge.trigger")
    assert archived["outcome"] == outcome
    assert archived["reason"] == "dependency part2 failed: exited with status 4"
    history = [json.loads(line) for line in paths.history_file.read_text().splitlines()]
    assert [line["id"] for line in history][-1] == "merge", "its end is in the history too"


def test_an_unknown_upstream_fails_after_dependency_wait(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "orphan", "a", int(clock.now * 1e9), after=["never-written"])
    engine = make(DEPENDENCY_WAIT=60)
    clock.now += 59
    engine.apply([], clock.now)
    assert (paths.triggers / "orphan.trigger").exists()
    clock.now += 1
    engine.apply([], clock.now)
    archived = result(paths, paths.failed, "orphan.trigger")
    assert archived["reason"].startswith("dependency never-written never came")
    assert not runner.launched


def test_an_upstream_that_ended_before_a_restart_is_found_in_the_history(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "early", "a", 1)
    engine = make()
    finish(engine, runner.launched[0], 2, clock.now)
    write(paths, "late", "b", 2, after=["early"], on_upstream_failure="skip")
    make()  # a new daemon remembers nothing of "early" but what the history says
    assert result(paths, paths.failed, "late.trigger")["reason"] == \
        "dependency early failed: exited with status 2"


def test_a_dedupe_key_held_by_a_live_trigger_makes_a_duplicate(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "first", "a", 1, dedupe_key="review-52")
    engine = make()
    write(paths, "again", "b", 2, dedupe_key="review-52")
    engine.reader.scan(engine.admission)
    engine.apply([], clock.now)
    archived = result(paths, paths.invalid, "again.trigger")
    assert archived["outcome"] == "duplicate"
    assert "first.trigger (id first)" in archived["reason"]
    finish(engine, runner.launched[0], 0, clock.now)
    write(paths, "later", "b", 3, dedupe_key="review-52")
    engine.reader.scan(engine.admission)
    engine.apply([], clock.now)
    assert launched_ids(runner) == ["first", "later"], "the key is free once its holder ended"


def test_a_waiting_trigger_can_be_cancelled_and_its_dependents_follow_their_policy(setup) -> None:
    paths, clock, _runner, make = setup
    write(paths, "up", "a", 1)
    write(paths, "middle", "b", 2, after=["up"])
    write(paths, "down", "c", 3, after=["middle"])
    engine = make(PARALLEL_DAEMON="true")
    answers: list[dict] = []
    engine.submit({"op": "cancel", "trigger": "middle.trigger"}, answers.append)
    engine.apply([], clock.now)
    assert answers[0]["ok"]
    assert result(paths, paths.failed, "middle.trigger")["outcome"] == "cancelled"
    assert result(paths, paths.failed, "down.trigger")["reason"] == \
        "dependency middle cancelled: cancelled by the operator"


def test_a_released_trigger_takes_its_place_by_priority_and_age(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "busy", "x", 1)
    write(paths, "upstream", "y", 2)
    write(paths, "old-after", "x", 3, after=["upstream"])
    write(paths, "younger", "x", 4)
    engine = make(PARALLEL_DAEMON="true")
    assert launched_ids(runner) == ["busy", "upstream"]
    write(paths, "urgent", "x", 5, priority=5)
    engine.reader.scan(engine.admission)
    engine.apply([], clock.now)
    finish(engine, runner.launched[1], 0, clock.now)  # old-after joins the queue, in its place
    finish(engine, runner.launched[0], 0, clock.now)
    finish(engine, runner.launched[2], 0, clock.now)
    finish(engine, runner.launched[3], 0, clock.now)
    assert launched_ids(runner) == ["busy", "upstream", "urgent", "old-after", "younger"]


def test_an_upstream_whose_file_vanished_fails_its_dependents(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "busy", "a", 1)
    write(paths, "up", "a", 2)
    write(paths, "down", "b", 3, after=["up"])
    engine = make(PARALLEL_DAEMON="true")
    (paths.triggers / "up.trigger").unlink()  # someone took it away while it waited
    finish(engine, runner.launched[0], 0, clock.now)
    assert result(paths, paths.failed, "down.trigger")["reason"] == \
        "dependency up lost: its file was taken out of the trigger folder before it ran"
    assert launched_ids(runner) == ["busy"]


def test_a_dedupe_key_is_still_held_by_a_run_adopted_after_a_restart(setup) -> None:
    paths, _clock, runner, make = setup
    write(paths, "first", "a", 1, dedupe_key="k")
    make()
    keeper_started(runner.launched[0], 12)
    runner.holding.add(runner.launched[0].run_id)
    write(paths, "again", "b", 2, dedupe_key="k")
    make()  # adopts "first", then reads "again"
    assert result(paths, paths.invalid, "again.trigger")["outcome"] == "duplicate"
    assert len(runner.launched) == 1
