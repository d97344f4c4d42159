"""The keeper SIGKILLed while its agents write: they go on, their output whole in their logs,
and each run is archived once with the exit status its agent really had."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import psutil
import pytest
from conftest import Project, gone, wait_until
from test_metrics import keeper_of
from test_recovery import kill_daemon

WRITING_AGENT = Path(__file__).with_name("writing_agent.py")
COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(WRITING_AGENT))}"
CODES = {"a": 0, "b": 3, "c": 0, "d": 42}


def start_writers(project: Project, output: str) -> dict[str, Path]:
    """Four agents writing; their logs, once each has written a few lines."""
    for agent, code in CODES.items():
        project.trigger(f"{agent}.trigger", agent,
                        context={"gate": "G", "exit": code, "format": output})
    project.start(AGENT_COMMAND=COMMAND, AGENT_OUTPUT=output, PARALLEL_DAEMON="true")
    wait_until(lambda: len(project.journal("start")) == len(CODES), what="every agent started")
    logs = {agent: project.paths.logs / f"{run['run_id']}.log"
            for agent, run in project.slots().items()}
    for log in logs.values():
        wait_until(lambda log=log: log.exists() and log.stat().st_size > 200, what="writing")
    return logs


def find_keeper(project: Project) -> psutil.Process | None:
    try:
        return keeper_of(project)
    except StopIteration:
        return None


def kill_keeper(project: Project) -> psutil.Process:
    """SIGKILL the project's keeper (waiting for one: the daemon makes one per run asked)."""
    keeper = wait_until(lambda: find_keeper(project), 30, "a keeper")
    keeper.kill()
    wait_until(lambda: gone(keeper.pid), 5, "keeper gone")
    return keeper


def still_writing(logs: dict[str, Path]) -> None:
    """Every log grows after the keeper's death: its agent is alive and its writes land."""
    sizes = {agent: log.stat().st_size for agent, log in logs.items()}
    for agent, log in logs.items():
        wait_until(lambda a=agent, f=log: f.stat().st_size > sizes[a] + 200, 10,
                   f"{agent} still writing")


def assert_whole_and_true(project: Project, output: str) -> None:
    archived = project.wait_archived(len(CODES), timeout=30)
    assert archived == {f"{agent}.trigger": "done" if code == 0 else "failed"
                        for agent, code in CODES.items()}
    history = project.history(len(archived))
    assert sorted(run["trigger"] for run in history) == sorted(archived), "each archived once"
    wrote = {entry["trigger"]: entry["lines"] for entry in project.journal("wrote")}
    for agent, code in CODES.items():
        result = project.result(f"{agent}.trigger")
        assert (result["exit_code"], result["outcome"]) == \
            (code, "succeeded" if code == 0 else "failed"), result
        lines = Path(result["log"]).read_text().splitlines()
        numbers = [int(n) for n in re.findall(r"line (\d+)", "\n".join(lines))]
        count = wrote[f"{agent}.trigger"]
        assert numbers == list(range(count)), f"{agent}: every line, once, in order"
        assert f"wrote {count}" in lines[-1]
        if output == "claude":  # its own account, read back from its log
            assert result["result_text"] == f"wrote {count}", result
            assert result["session_id"] == "s"


@pytest.mark.parametrize("output", ["text", "claude"])
def test_agents_outlive_a_killed_keeper(project: Project, output: str) -> None:
    logs = start_writers(project, output)
    kill_keeper(project)
    still_writing(logs)
    project.open_gate("G")
    assert_whole_and_true(project, output)
    project.trigger("after.trigger", "e", context={"gate": "G", "format": output})
    project.wait_archived(len(CODES) + 1)  # a new keeper runs it
    assert project.result("after.trigger")["outcome"] == "succeeded"


def test_agents_outlive_the_daemon_then_the_keeper(project: Project) -> None:
    """With the daemon dead first, nobody is connected when the keeper dies: its reaper
    records the exits and the next daemon archives them."""
    logs = start_writers(project, "claude")
    kill_daemon(project)
    kill_keeper(project)
    still_writing(logs)
    project.open_gate("G")
    wait_until(lambda: len(project.journal("wrote")) == len(CODES), what="every agent ended")
    project.start()
    assert_whole_and_true(project, "text")  # the journal has the exits, not the runs' account


def test_a_run_the_dead_keeper_never_began_is_asked_of_a_new_one(project: Project) -> None:
    """The keeper stopped, then killed, with a run's request unread: nothing of it ran, so a
    new keeper runs it, once."""
    project.start()
    keeper = wait_until(lambda: find_keeper(project), 10, "the keeper")
    keeper.suspend()
    project.trigger("t.trigger", context={"exit": 3})
    journals = project.paths.runs
    wait_until(lambda: any("t.trigger" in path.read_text() for path in journals.glob("*.jsonl")),
               10, "the run asked for")
    keeper.kill()
    project.wait_archived(1)
    assert project.started() == ["t.trigger"]
    assert (project.result("t.trigger")["outcome"], project.result("t.trigger")["exit_code"]) \
        == ("failed", 3)
