"""What a Slurm run survives: the daemon SIGKILLed mid-run (running jobs adopted, ended ones
recorded with their real status), a daemon that died between ``sbatch`` and its journal line
(never submitted twice), the controller stopped mid-run, and no controller at start (a one-line
refusal)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, gone, wait_until
from slurm_cluster import answers, jobs_of, slurm_project, slurm_project_alone

from starforge_daemon.client.health import check_health
from starforge_daemon.runtime.slurm.cluster import Cluster

__all__ = ["slurm_project", "slurm_project_alone"]  # fixtures, imported for pytest to find


def kill_daemon(project: Project) -> None:
    pid = project.daemon_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: gone(pid), 10, "the daemon to die")


def test_a_daemon_killed_mid_run_adopts_running_jobs_and_records_ended_ones(
        slurm_project: Project) -> None:
    project = slurm_project
    project.start(PARALLEL_DAEMON="true")
    project.trigger("going.trigger", "agent-a", context={"gate": "going-gate"})
    project.trigger("ending.trigger", "agent-b", context={"gate": "ending-gate", "exit": 5})
    wait_until(lambda: len(project.journal("start")) == 2, 20, "both runs to start")
    kill_daemon(project)
    project.open_gate("ending-gate")  # it ends while no daemon runs
    wait_until(lambda: project.journal("end"), 20, "the run to end")
    project.start()
    project.wait_archived(1, timeout=20)
    ended = project.result("ending.trigger")
    assert (ended["outcome"], ended["exit_code"]) == ("failed", 5)
    assert "adopted a run that is still going" in project.log()
    project.open_gate("going-gate")
    project.wait_archived(2, timeout=20)
    assert project.result("going.trigger")["outcome"] == "succeeded"
    assert len(jobs_of(project)) == 2, "no run was submitted twice"


def forget_started_lines(runs: Path) -> None:
    """The journals as a daemon killed right after ``sbatch`` left them: no ``started`` line."""
    for journal in runs.glob("*.jsonl"):
        lines = journal.read_text().splitlines(keepends=True)
        journal.write_text("".join(line for line in lines if '"started"' not in line))


def test_a_job_submitted_but_not_journalled_is_found_by_its_comment(
        slurm_project: Project) -> None:
    project = slurm_project
    project.start()
    project.trigger("once.trigger", "agent-a", context={"gate": "once-gate"})
    wait_until(lambda: project.journal("start"), 20, "the run to start")
    kill_daemon(project)
    forget_started_lines(project.paths.runs)
    project.start()
    assert "adopted a run that is still going" in project.log()
    project.open_gate("once-gate")
    project.wait_archived(1, timeout=20)
    assert project.result("once.trigger")["outcome"] == "succeeded"
    assert len(project.journal("start")) == 1
    assert len(jobs_of(project)) == 1, "the run was not submitted twice"


def test_a_start_refuses_in_one_line_when_no_controller_answers(
        slurm_project: Project, tmp_path: Path) -> None:
    project = slurm_project
    config = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=6899", config))
    (tmp_path / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
    refused = project.cli("daemon", "start", check=False, env={"SLURM_CONF": str(dead)})
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "no Slurm controller answers" in refused.stderr
    assert not project.paths.pid_file.exists()
    assert jobs_of(project) == []


@contextlib.contextmanager
def controller_down(config: Path) -> Iterator[None]:
    """The cluster's controller stopped (SIGTERM: it saves its state; a SIGKILL right after a
    job started can lose the job's state, which Slurm then sees as a duplicate job and drains
    the node) and started again at the end, whatever happens in between."""
    pid_file = config.parent / "slurmctld.pid"
    if not pid_file.exists():
        pytest.skip("needs a cluster of `.ci/slurm up`, whose controller the test restarts")
    controller = int(pid_file.read_text())
    os.kill(controller, signal.SIGTERM)
    try:
        wait_until(lambda: gone(controller), 20, "the controller to stop")
        yield
    finally:
        subprocess.run(["slurmctld", "-f", str(config)], check=True, timeout=30)
        wait_until(lambda: answers(Cluster()), 30, "the controller to answer again")


def test_the_controller_stopped_mid_run_holds_new_runs_and_loses_nothing(
        slurm_project_alone: Project) -> None:
    project = slurm_project_alone
    project.start(PARALLEL_DAEMON="true")
    project.trigger("through.trigger", "agent-a", context={"gate": "through-gate", "exit": 4})
    wait_until(lambda: project.journal("start"), 20, "the run to start")
    with controller_down(Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))):
        project.open_gate("through-gate")  # the run ends while no controller answers
        wait_until(lambda: project.journal("end"), 20, "the run to end")
        wait_until(lambda: not check_health(project.paths).healthy, 40, "the outage to be seen")
        project.trigger("held.trigger", "agent-b")
        wait_until(lambda: "controller does not answer" in project.log(), 20, "new runs held")
    project.wait_archived(2, timeout=40)
    through = project.result("through.trigger")
    assert (through["outcome"], through["exit_code"]) == ("failed", 4)
    assert project.result("held.trigger")["outcome"] == "succeeded"
    assert len(jobs_of(project)) == 2

