"""What ``squeue --json`` says of a job, and the run outcome it becomes (no cluster needed)."""

from __future__ import annotations

import signal

import pytest

from starforge_daemon.core.models import RunExit
from starforge_daemon.runtime.slurm.cluster import Job, exit_code, job_environment
from starforge_daemon.runtime.slurm.runner import run_exit


def job(state: object, exit_status: object = 0, **fields: object) -> Job:
    return Job.from_squeue({"job_id": 42, "name": "sf-p.agent-a", "comment": "agent-a-1-abcdef",
                            "job_state": state, "exit_code": exit_status,
                            "end_time": 1_800_000_000, **fields})


@pytest.mark.parametrize(("status", "code"), [(0, 0), (3 << 8, 3), (int(signal.SIGKILL), -9)])
def test_the_raw_wait_status_of_slurm_22_becomes_an_exit_code(status: int, code: int) -> None:
    assert exit_code(job("FAILED", status)) == code


def test_later_versions_give_code_and_signal_apart_and_states_as_a_list() -> None:
    signalled = job(["CANCELLED"], {"status": ["SIGNALED"], "return_code": {"number": 0},
                                     "signal": {"id": {"number": 15}, "name": "TERM"}})
    assert exit_code(signalled) == -15 and signalled.over
    exited = job(["FAILED"], {"status": ["ERROR"], "return_code": {"number": 3}, "signal": {}})
    assert exit_code(exited) == 3


def test_a_job_is_over_only_once_its_processes_are_gone() -> None:
    assert not job("RUNNING").over and not job("PENDING").over
    assert not job(["COMPLETED", "COMPLETING"]).over
    assert job("COMPLETED").over and job("TIMEOUT").over


def test_slurm_s_own_endings_say_why_and_the_journal_speaks_for_the_rest() -> None:
    journalled = RunExit(ended_at=1.0, exit_code=5)
    assert run_exit(job("FAILED", 5 << 8), journalled, 2.0) == journalled
    assert run_exit(job("FAILED", 5 << 8), None, 2.0) == RunExit(1_800_000_000.0, exit_code=5)
    failed_node = run_exit(job("NODE_FAIL"), journalled, 2.0)
    assert failed_node.exit_code is None
    assert failed_node.error == "the Slurm job 42 ended because its node failed (NODE_FAIL)"
    assert "preempted" in (run_exit(job("PREEMPTED"), None, 2.0).error or "")
    out_of_memory = run_exit(job("OUT_OF_MEMORY", int(signal.SIGKILL)), None, 2.0)
    assert (out_of_memory.exit_code, out_of_memory.oom_kills) == (-9, 1)


def test_a_job_inherits_only_what_finds_python_and_the_cluster() -> None:
    environ = {"PATH": "/usr/bin", "HOME": "/home/a", "SLURM_CONF": "/etc/s.conf",
               "SBATCH_ACCOUNT": "lab", "ANTHROPIC_API_KEY": "secret", "LD_PRELOAD": "x.so"}
    assert job_environment(environ) == {"PATH": "/usr/bin", "HOME": "/home/a",
                                        "SLURM_CONF": "/etc/s.conf", "SBATCH_ACCOUNT": "lab"}
