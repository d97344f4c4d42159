"""Runs as Slurm batch jobs on a real cluster (``RUNNER=slurm``): the same triggers, slots and
outcomes as local runs. Skipped without a cluster (``tests/slurm_cluster.py``)."""

from __future__ import annotations

import itertools
import signal
from typing import Any

from conftest import Project, gone, wait_until
from slurm_cluster import jobs_of, slurm_project

__all__ = ["slurm_project"]  # the fixture, imported for pytest to find


def overlaps(runs: list[dict[str, Any]]) -> int:
    """The most runs that were going at one moment, from the agents' start and end lines."""
    moments = sorted(itertools.chain(((run["time"], 1) for run in runs if run["event"] == "start"),
                                     ((run["time"], -1) for run in runs if run["event"] == "end")))
    return max(itertools.accumulate(step for _, step in moments))


def test_backlog_and_live_triggers_drain_within_the_limit_one_run_per_agent(
        slurm_project: Project) -> None:
    project = slurm_project
    project.write_env(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=2)
    for number in range(3):  # the backlog, waiting before the daemon starts
        project.trigger(f"backlog-{number}.trigger", f"agent-{number % 2}", context={"sleep": 0.5})
    project.start()
    for number in range(3):
        project.trigger(f"live-{number}.trigger", f"agent-{number % 3}", context={"sleep": 0.5})
    archived = project.wait_archived(6, timeout=40)
    assert set(archived.values()) == {"done"}
    journal = project.journal()
    assert overlaps(journal) <= 2
    for agent in ("agent-0", "agent-1", "agent-2"):
        assert overlaps([line for line in journal if line["agent"] == agent]) == 1
    runs = {project.result(name)["run_id"] for name in archived}
    jobs = jobs_of(project)
    assert sorted(job.comment for job in jobs) == sorted(runs), "one job per run, no more"
    assert {job.name.rpartition(".")[2] for job in jobs} == {"agent-0", "agent-1", "agent-2"}


def test_exit_codes_signals_log_and_environment_come_back_exactly(slurm_project: Project) -> None:
    project = slurm_project
    value = "$HOME `id` \"quoted\" $(touch nowhere) \\ end"
    project.write_env(PARALLEL_DAEMON="true", STARFORGE_TEST_VALUE=value)
    project.start()
    project.trigger("zero.trigger", "agent-a", context={"output": 8192})
    project.trigger("three.trigger", "agent-b", context={"exit": 3})
    project.trigger("killed.trigger", "agent-c", context={"signal": int(signal.SIGKILL)})
    project.wait_archived(3, timeout=30)
    zero, three, killed = (project.result(f"{name}.trigger")
                           for name in ("zero", "three", "killed"))
    assert (zero["outcome"], zero["exit_code"]) == ("succeeded", 0)
    assert (three["outcome"], three["exit_code"]) == ("failed", 3)
    assert (killed["outcome"], killed["exit_code"]) == ("failed", -signal.SIGKILL)
    with open(zero["log"]) as log:
        assert log.read().endswith("THE END\n")
    start = next(line for line in project.journal("start") if line["agent"] == "agent-a")
    assert start["env"]["STARFORGE_TEST_VALUE"] == value
    assert start["env"]["STARFORGE_RUN_ID"] == zero["run_id"]
    assert start["cwd"] == str(project.root)
    assert not (project.root / "nowhere").exists()
    assert list(project.paths.runs.glob("*.job.json")) == [], "the specs are gone"


def test_a_timeout_stops_the_whole_tree_even_a_setsid_grandchild(slurm_project: Project) -> None:
    project = slurm_project
    project.start(AGENT_KILL_GRACE=1)
    project.trigger("slow.trigger", "agent-a", timeout=2,
                    context={"grandchild": True, "setsid": True, "ignore_term": True,
                             "sleep": 600})
    grandchild = wait_until(lambda: project.journal("grandchild"), 20)[0]["pid"]
    project.wait_archived(1, timeout=30)
    assert project.result("slow.trigger")["outcome"] == "timed_out"
    wait_until(lambda: gone(grandchild), 15, "the setsid grandchild to be killed")


def test_agent_stop_and_daemon_stop_end_their_jobs(slurm_project: Project) -> None:
    project = slurm_project
    project.start(PARALLEL_DAEMON="true")
    project.trigger("one.trigger", "agent-a", context={"gate": "never"})
    project.trigger("two.trigger", "agent-b", context={"gate": "never", "ignore_term": True})
    wait_until(lambda: len(project.journal("start")) == 2, 20, "both runs to start")
    project.cli("agent", "stop", "agent-a")
    project.wait_archived(1, timeout=20)
    assert project.result("one.trigger")["outcome"] == "killed"
    project.stop()  # agent-b ignores the stop signal: killed after the grace
    assert project.result("two.trigger")["outcome"] == "killed"
    wait_until(lambda: all(job.over for job in jobs_of(project)), 20, "the jobs to end")
