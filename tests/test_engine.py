"""The engine's decisions with a fake clock and a scripted runner: no processes, no sleeps."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from starforge_daemon.core.events import Event, Publisher
from starforge_daemon.core.holds import HoldKind
from starforge_daemon.core.models import ProcessIdentity, RunExit
from starforge_daemon.daemon.engine import Engine, StopMode
from starforge_daemon.daemon.logfile import EventLog, EventLogFile
from starforge_daemon.daemon.observers.eventlog import EventLogObserver
from starforge_daemon.daemon.persistence import Stores
from starforge_daemon.daemon.service import run_base_environment
from starforge_daemon.runtime.api import Exited, LaunchSpec, Reconciled, RunEvent, Started
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings
from starforge_daemon.workspaces.base import SharedCheckout


class FakeRunner:
    containment = "containment: none (scripted runs)"
    reachable = True

    def __init__(self) -> None:
        self.launched: list[LaunchSpec] = []
        self.stops: list[tuple[str, bool]] = []  # (run id, force)
        self.holding: set[str] = set()  # runs an earlier daemon's backend still follows

    def connect(self) -> None:
        pass

    def launch(self, spec: LaunchSpec) -> None:
        self.launched.append(spec)

    def reconcile(self, open_runs: Mapping[str, ProcessIdentity | None]) -> Reconciled:
        return Reconciled({run_id: agent or ProcessIdentity(pid=1, start=1.0)
                           for run_id, agent in open_runs.items() if run_id in self.holding})

    def stop(self, run_id: str, force: bool) -> None:
        self.stops.append((run_id, force))

    def can_follow(self, run_id: str) -> bool:
        return False  # scripted runs start when the test says: none is handed over

    def take_events(self) -> list[RunEvent]:
        raise AssertionError("the tests drive Engine.apply directly")


class FakeReactor:
    def wake(self) -> None:
        pass

    def wait(self, timeout: float | None) -> None:
        raise AssertionError("the tests drive Engine.apply directly")


class FakeGauge:
    """The memory gauge: short of memory while ``reason`` is set."""

    kind = HoldKind.MEMORY

    def __init__(self) -> None:
        self.reason: str | None = None

    def shortage(self, now: float) -> str | None:
        return self.reason


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path):
    paths = ProjectPaths(tmp_path)
    paths.ensure()
    clock = Clock()
    runner = FakeRunner()

    def make(gauge: FakeGauge | None = None, observer: Callable[[Event], None] | None = None,
             **settings) -> Engine:
        events = Publisher()
        events.subscribe(EventLogObserver(EventLog(EventLogFile(paths.daemon_log, 1 << 20))))
        if observer is not None:
            events.subscribe(observer)
        engine = Engine(Settings(**settings), paths, reactor=FakeReactor(), runner=runner,
                        stores=Stores.open(paths),
                        workspaces=SharedCheckout(paths.root), gauge=gauge or FakeGauge(),
                        clock=clock, events=events, base_env=run_base_environment(paths))
        engine.prepare()
        engine.apply([], clock.now)  # the first turn reads the waiting triggers and dispatches
        return engine

    return paths, clock, runner, make


def write(paths: ProjectPaths, name: str, agent: str, stamp: int) -> None:
    path = paths.triggers / name
    path.write_text(json.dumps({"to_agent": agent}))
    os.utime(path, ns=(stamp, stamp))


def started(spec: LaunchSpec, pid: int) -> Started:
    return Started(spec.run_id, ProcessIdentity(pid=pid, start=1.0))


def exited(spec: LaunchSpec, code: int, at: float) -> Exited:
    return Exited(spec.run_id, RunExit(ended_at=at, exit_code=code))


def result(paths: ProjectPaths, folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.result.json").read_text())


def test_dispatch_holds_busy_agent_and_respects_limit(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a1.trigger", "a", 1)
    write(paths, "a2.trigger", "a", 2)
    write(paths, "b1.trigger", "b", 3)
    write(paths, "c1.trigger", "c", 4)
    engine = make(PARALLEL_DAEMON=True, MAX_CONCURRENT_AGENTS=2)
    first = runner.launched[0]
    assert first.argv == ["claude", "--print", "--permission-mode", "bypassPermissions",
                          "--output-format", "stream-json", "--verbose"]
    assert first.output == "claude"
    assert first.stdin == paths.prompt_file(first.run_id), "the default hands the prompt on stdin"
    prompt = first.stdin.read_text()
    assert "'a'" in prompt and '{"to_agent":"a"}' in prompt, "the prompt names agent and trigger"
    assert [s.env["STARFORGE_TRIGGER_FILE"].rsplit("/", 1)[1] for s in runner.launched] == [
        "a1.trigger", "b1.trigger"]
    first = runner.launched[0]
    engine.apply([started(first, 11), exited(first, 0, clock.now)], clock.now)
    names = [s.env["STARFORGE_TRIGGER_FILE"].rsplit("/", 1)[1] for s in runner.launched]
    assert names == ["a1.trigger", "b1.trigger", "a2.trigger"], "a2 (older) before c1"
    assert (paths.processed / "a1.trigger").exists()
    assert result(paths, paths.processed, "a1.trigger")["outcome"] == "succeeded"
    clock.now += 0.1  # slot saves are batched
    engine.apply([], clock.now)
    slots = json.loads(paths.slots_file.read_text())
    assert slots["a"]["status"] == "busy" and slots["b"]["status"] == "busy"


def test_timeout_escalates_from_term_to_kill_on_the_clock(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "t.trigger", "slow", 1)
    engine = make(AGENT_TIMEOUT=30, AGENT_KILL_GRACE=5)
    spec = runner.launched[0]
    engine.apply([started(spec, 42)], clock.now)
    clock.now += 29.9
    engine.apply([], clock.now)
    assert runner.stops == []
    clock.now += 0.1
    engine.apply([], clock.now)
    assert runner.stops == [(spec.run_id, False)]
    clock.now += 4.9
    engine.apply([], clock.now)
    assert runner.stops == [(spec.run_id, False)]
    clock.now += 0.1
    engine.apply([], clock.now)
    assert runner.stops[-1] == (spec.run_id, True)
    engine.apply([exited(spec, -9, clock.now)], clock.now)
    outcome = result(paths, paths.failed, "t.trigger")
    assert outcome["outcome"] == "timed_out" and outcome["exit_code"] == -9
    clock.now += 0.1
    engine.apply([], clock.now)
    assert json.loads(paths.slots_file.read_text())["slow"]["status"] == "idle"


def test_stop_terminates_runs_and_finishes_when_they_are_gone(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    write(paths, "b.trigger", "b", 2)
    write(paths, "c.trigger", "c", 3)
    engine = make(PARALLEL_DAEMON=True, MAX_CONCURRENT_AGENTS=2)
    a, b = runner.launched
    engine.apply([started(a, 1), started(b, 2)], clock.now)
    engine.stop_request = StopMode.STOP
    engine.apply([], clock.now)
    assert sorted(runner.stops) == sorted([(a.run_id, False), (b.run_id, False)])
    assert not engine.finished
    engine.apply([exited(a, -15, clock.now)], clock.now)
    assert not engine.finished and len(runner.launched) == 2, "no new run while stopping"
    clock.now += 10
    engine.apply([], clock.now)
    assert (b.run_id, True) in runner.stops and (a.run_id, True) not in runner.stops
    engine.apply([exited(b, -9, clock.now)], clock.now)
    assert engine.finished
    assert result(paths, paths.failed, "a.trigger")["outcome"] == "killed"
    assert (paths.triggers / "c.trigger").exists(), "queued triggers stay queued"


def test_handoff_leaves_runs_alone(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    engine = make()
    engine.apply([started(runner.launched[0], 7)], clock.now)
    engine.stop_request = StopMode.HANDOFF
    engine.apply([], clock.now)
    assert engine.finished and runner.stops == []
    assert list(paths.running.iterdir()) == [paths.running / "a.trigger"]


def test_spawn_error_reported_by_monitor_fails_the_trigger(setup) -> None:
    paths, clock, runner, make = setup
    write(paths, "a.trigger", "a", 1)
    write(paths, "a2.trigger", "a", 2)
    engine = make()
    spec = runner.launched[0]
    engine.apply([Exited(spec.run_id, RunExit(ended_at=clock.now, error="could not start 'x'"))],
                 clock.now)
    assert result(paths, paths.failed, "a.trigger")["reason"] == "could not start 'x'"
    assert len(runner.launched) == 2, "the slot carries on with the next trigger"


def test_sleeps_until_the_next_deadline(setup) -> None:
    paths, clock, _runner, make = setup
    write(paths, "a.trigger", "a", 1)
    engine = make(AGENT_TIMEOUT=3, PROCESS_MONITOR_INTERVAL=10)
    clock.now += 2  # past the state-save throttle
    engine.apply([], clock.now)
    assert engine._next_wakeup(clock.now) == pytest.approx(clock.now + 1)


def test_a_malformed_operator_request_is_answered_in_words(setup) -> None:
    _paths, clock, _runner, make = setup
    engine = make()
    answers: list[dict] = []
    for request in ({"op": "stop-agent"}, {"op": "cancel"}, {"op": "fly"}):
        engine.submit(request, answers.append)
    engine.apply([], clock.now)
    assert answers == [{"ok": False, "error": "the request lacks 'agent'"},
                       {"ok": False, "error": "the request lacks 'trigger'"},
                       {"ok": False, "error": "unknown request 'fly'"}]
