"""The local backend behind the Runner protocol, on the daemon's reactor and a real keeper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from conftest import processes_of, wait_until

from starforge_daemon.core.models import ProcessIdentity
from starforge_daemon.daemon.reactor import Reactor
from starforge_daemon.runtime.api import Exited, LaunchSpec, RunEvent, Started
from starforge_daemon.runtime.local import keeper
from starforge_daemon.runtime.local.client import ProcessRunner
from starforge_daemon.runtime.local.identities import is_alive, reported_agent
from starforge_daemon.runtime.local.processes import process_start
from starforge_daemon.runtime.local.setup import local_runner
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[ProjectPaths, Reactor, ProcessRunner]]:
    paths = ProjectPaths(tmp_path)
    paths.ensure()
    reactor = Reactor()
    runner, _ = local_runner(paths, Settings(AGENT_STOP_SIGNAL="SIGTERM"), reactor)
    runner.connect()
    yield paths, reactor, runner
    runner.close()
    reactor.close()
    _, leftovers = psutil.wait_procs(processes_of(tmp_path), timeout=10)
    for proc in leftovers:
        proc.kill()
    assert not leftovers, f"left processes behind: {[proc.pid for proc in leftovers]}"


def spec(paths: ProjectPaths, run_id: str, code: str) -> LaunchSpec:
    return LaunchSpec(run_id=run_id, argv=[sys.executable, "-c", code], env={}, cwd=str(paths.root),
                      log_path=paths.logs / f"{run_id}.log", log_cap=1 << 20,
                      journal=paths.runs / "test.jsonl")


def events_until(reactor: Reactor, runner: ProcessRunner, done, timeout: float = 15.0
                 ) -> list[RunEvent]:
    """Run the reactor until ``done(events)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    events: list[RunEvent] = []
    while not done(events):
        assert time.monotonic() < deadline, f"gave up waiting; got {events}"
        reactor.wait(min(0.05, deadline - time.monotonic()))  # some ``done`` are not events
        events += runner.take_events()
    return events


def test_a_stop_asked_before_the_process_is_known_is_sent_once_it_is(backend) -> None:
    paths, reactor, runner = backend
    runner.launch(spec(paths, "sleeper", "import time; time.sleep(60)"))
    runner.stop("sleeper", force=False)
    events = events_until(reactor, runner, lambda seen: any(isinstance(e, Exited) for e in seen))
    assert [type(event) for event in events] == [Started, Exited]
    assert events[1].exit is not None and events[1].exit.exit_code == -signal.SIGTERM


def test_the_start_from_the_spawn_clock_is_the_kernels_stamp() -> None:
    """The keeper stamps a run's identity from CLOCK_BOOTTIME around its spawn; adoption
    compares it with the start the kernel shows in /proc (seconds since boot, the clock no
    wall-clock step moves) within 0.05 s."""
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    pid = os.posix_spawnp("sleep", ["sleep", "30"], os.environ)
    after = time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        with open(f"/proc/{pid}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        measured = ticks / os.sysconf("SC_CLK_TCK")
        assert abs(keeper.spawned_start(pid, before, after) - measured) < 0.02
        # a spawn that took long (preempted) reads /proc instead
        assert keeper.spawned_start(pid, before, before + 1) == pytest.approx(measured)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_each_run_gets_its_whole_environment_though_only_the_difference_is_sent(backend) -> None:
    """The keeper holds the first run's environment; each later run's request carries what
    differs, and the names it leaves out."""
    paths, reactor, runner = backend
    show = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('A', 'B', 'C')}))"
    environments = [{"A": "1", "B": "2"}, {"A": "1", "C": "3"}, {"A": "one", "B": "2"}]
    for number, env in enumerate(environments):
        runner.launch(replace(spec(paths, f"env-{number}", show), env=env))
        events_until(reactor, runner, lambda seen: any(isinstance(e, Exited) for e in seen))
    seen = [(paths.logs / f"env-{number}.log").read_text().strip() for number in range(3)]
    assert seen == ['{"A": "1", "B": "2", "C": null}', '{"A": "1", "B": null, "C": "3"}',
                    '{"A": "one", "B": "2", "C": null}']


def test_a_keeper_whose_daemon_died_before_it_heard_exits_quietly(tmp_path: Path) -> None:
    """The daemon that started the keeper is gone before it reads ``listening`` (its end of the
    pipe closed): the keeper and its reaper exit, with no traceback and no socket left."""
    socket_path, runs = tmp_path / "keeper.sock", tmp_path / "runs"
    runs.mkdir()
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will hear it
    try:
        started = subprocess.run(
            [sys.executable, "-I", "-S", keeper.__file__, str(socket_path), str(runs)],
            stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE, timeout=30,
            start_new_session=True)
    finally:
        os.close(write_end)
    assert started.returncode == 0 and started.stderr == b"", started.stderr.decode()
    assert not socket_path.exists()
    wait_until(lambda: not processes_of(tmp_path), 10, "the keeper's reaper gone")


def test_an_agent_named_by_a_keeper_of_an_earlier_version_gets_its_start_from_proc() -> None:
    """Such a keeper (it outlives the daemon) names its agents by a wall-clock create_time."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        agent = reported_agent({"pid": child.pid, "create_time": 1796000000.0})
        assert agent == ProcessIdentity(pid=child.pid, start=process_start(child.pid))
        assert is_alive(agent)
        assert reported_agent({"pid": child.pid, "start": 12.5}).start == 12.5
    finally:
        child.kill()
        child.wait()
