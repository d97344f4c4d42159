"""Stop means stopped, through the real daemon: whichever way a run ends, nothing it started
remains, with a cgroup per agent and with the sweep by ``STARFORGE_RUN_ID``.

The agent (tests/containment_hostile.py) ignores SIGTERM and SIGINT, double-forks and leaves
an orphan in a session of its own, as Claude Code's Bash tool does with every command.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import pytest
from conftest import Project, gone, wait_until

from starforge_daemon.runtime.local import containment

HOSTILE = Path(__file__).with_name("containment_hostile.py")
HOST = containment.detect(Path(__file__).parent, force_sweep=False)
MECHANISMS = [
    pytest.param("cgroup", marks=pytest.mark.skipif(
        HOST.mechanism != "cgroup", reason=f"no writable cgroup2 hierarchy here: {HOST.note}")),
    "sweep",
]


def processes_of_run(run_id: str) -> list[int]:
    """Every process whose environment says it belongs to ``run_id``."""
    needle = f"STARFORGE_RUN_ID={run_id}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                if needle in file.read() and not gone(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


class Hostile:
    """A project whose agent leaves an orphan behind; ``mechanism`` picks the containment."""

    def __init__(self, project: Project, mechanism: str) -> None:
        self.project = project
        self.env = {"STARFORGE_CONTAINMENT": "sweep"} if mechanism == "sweep" else {}
        self.markers = project.root / "markers"
        self.markers.mkdir()

    def start(self, *flags: str, **settings: object) -> None:
        words = [sys.executable, str(HOSTILE), str(self.markers), *flags]
        self.project.write_env(AGENT_COMMAND=shlex.join(words), AGENT_KILL_GRACE=0.5,
                               **settings)
        self.project.cli("daemon", "start", env=self.env)

    def in_place(self) -> str:
        """Wait until the run's leader and orphan are there; the run's id."""
        wait_until(lambda: {name.split("-")[0] for name in os.listdir(self.markers)}
                   >= {"leader", "orphan"}, what="the agent's processes in place")
        return wait_until(lambda: self.project.slots().get("agent-a", {}).get("run_id")
                          or self._archived_run_id(), what="the run's id")

    def _archived_run_id(self) -> str | None:
        archived = self.project.all_archived()
        return self.project.result(next(iter(archived)))["run_id"] if archived else None

    def ended(self, run_id: str, outcome: str) -> dict[str, object]:
        """The trigger archived once with ``outcome``, and none of the run's processes left."""
        self.project.wait_archived(1)
        result = self.project.result("t.trigger")
        assert result["run_id"] == run_id and result["outcome"] == outcome, result
        assert result["reason"] and "cpu_seconds" in result
        wait_until(lambda: not processes_of_run(run_id), 10, "every process of the run gone")
        return result


@pytest.fixture(params=MECHANISMS)
def hostile(request: pytest.FixtureRequest, project: Project) -> Hostile:
    return Hostile(project, request.param)


def test_an_orphan_left_by_a_run_that_exited_is_killed(hostile: Hostile) -> None:
    hostile.start("--exit")
    hostile.project.trigger("t.trigger")
    run_id = hostile.in_place()
    hostile.ended(run_id, "succeeded")


def test_a_timed_out_run_is_stopped_whole(hostile: Hostile) -> None:
    hostile.start(AGENT_TIMEOUT=1)
    hostile.project.trigger("t.trigger")
    run_id = hostile.in_place()
    hostile.ended(run_id, "timed_out")


def test_agent_stop_stops_the_whole_run(hostile: Hostile) -> None:
    hostile.start()
    hostile.project.trigger("t.trigger")
    run_id = hostile.in_place()
    hostile.project.cli("agent", "stop", "agent-a")
    hostile.ended(run_id, "killed")


def test_daemon_stop_stops_the_whole_run(hostile: Hostile) -> None:
    hostile.start()
    hostile.project.trigger("t.trigger")
    run_id = hostile.in_place()
    hostile.project.stop()
    hostile.ended(run_id, "killed")


def test_a_run_adopted_after_the_daemon_was_killed_is_still_contained(hostile: Hostile) -> None:
    hostile.start()
    hostile.project.trigger("t.trigger")
    run_id = hostile.in_place()
    pid = hostile.project.daemon_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: gone(pid), 5, "daemon gone")
    hostile.project.cli("daemon", "start", env=hostile.env)
    assert "adopted" in hostile.project.log()
    hostile.project.cli("agent", "stop", "agent-a")
    hostile.ended(run_id, "killed")


@pytest.mark.skipif(HOST.mechanism != "cgroup", reason="needs a writable cgroup2 hierarchy")
def test_the_daemons_cgroups_are_gone_once_it_stops(project: Project) -> None:
    hostile = Hostile(project, "cgroup")
    hostile.start("--exit")
    project.trigger("t.trigger")
    hostile.ended(hostile.in_place(), "succeeded")
    prepared = containment.detect(project.root)
    assert prepared.project is not None and os.path.isdir(prepared.project)
    project.stop()
    assert not os.path.exists(prepared.project), "the project's cgroups are removed at stop"
