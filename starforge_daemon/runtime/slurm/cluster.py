"""The Slurm commands the runner uses (``sbatch``, ``scancel``, ``squeue --json``, ``scontrol
ping``), each run with an argument list, never through a shell, and what ``squeue`` says of a
job as a typed record."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMMAND_TIMEOUT = 20.0  # seconds; Slurm's commands retry an unreachable controller themselves
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "BOOT_FAIL", "DEADLINE"})


# What a job's batch script inherits from the daemon (sbatch runs with this alone, and exports
# it): enough to find python3 and the cluster. The agent's environment is the run's, from its
# spec file. ``--export=NONE`` would do the same but make each node load the user's login
# environment first, about a second per job.
_JOB_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ")
_JOB_ENVIRONMENT_PREFIXES = ("SLURM_", "SBATCH_")


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items()
            if key in _JOB_ENVIRONMENT or key.startswith(_JOB_ENVIRONMENT_PREFIXES)}


class ClusterError(Exception):
    """A Slurm command failed or the controller did not answer; the message says why."""


@dataclass(frozen=True)
class Job:
    job_id: int
    name: str
    comment: str
    state: str  # Slurm's base state: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...
    completing: bool  # the job's end is under way (its processes are being killed)
    wait_status: int | None  # the batch script's raw wait status, once known
    reason: str
    end_time: float | None

    @property
    def over(self) -> bool:
        """Ended, its processes gone (a completing job still has some)."""
        return self.state in ENDED and not self.completing

    @classmethod
    def from_squeue(cls, data: dict[str, Any]) -> Job:
        states = data.get("job_state")
        states = [states] if isinstance(states, str) else list(states or [])
        base = next((state for state in states if state in ENDED), states[0] if states else "")
        end = data.get("end_time")
        end = end.get("number") if isinstance(end, dict) else end
        return cls(job_id=int(data["job_id"]), name=data.get("name") or "",
                   comment=data.get("comment") or "", state=base,
                   completing="COMPLETING" in states or base == "COMPLETING",
                   wait_status=_wait_status(data.get("exit_code")),
                   reason=data.get("state_reason") or "", end_time=float(end) if end else None)


def _wait_status(value: Any) -> int | None:
    """Slurm 22.05 gives the raw wait status; later versions a record of code and signal."""
    if isinstance(value, int):
        return value
    if not isinstance(value, dict):
        return None
    signal = (value.get("signal") or {}).get("id") or 0
    if isinstance(signal, dict):
        signal = signal.get("number") or 0
    code = value.get("return_code") or 0
    if isinstance(code, dict):
        code = code.get("number") or 0
    return int(signal) if signal else int(code) << 8


def exit_code(job: Job) -> int | None:
    """The batch script's exit code; negative: the signal that killed it."""
    return None if job.wait_status is None else os.waitstatus_to_exitcode(job.wait_status)


class Cluster:
    """The controller as the commands on this machine reach it (``SLURM_CONF``, munge)."""

    def _run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                                  timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        except FileNotFoundError:
            raise ClusterError(f"{argv[0]} is not on PATH: install the Slurm client "
                               "(slurm-client) and munge") from None
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT:g}s") from None
        if done.returncode != 0:
            said = ([line for line in done.stderr.splitlines() if line.strip()][-1:]  # its error
                    or [line for line in done.stdout.splitlines() if line.strip()][:1])
            raise ClusterError(said[0] if said else f"{argv[0]} exited {done.returncode}")
        return done.stdout

    def ping(self) -> None:
        """Raise ClusterError unless the controller answers."""
        answer = self._run(["scontrol", "ping"])
        if "UP" not in answer:
            raise ClusterError(answer.strip() or "scontrol ping: no answer")

    def submit(self, options: Sequence[str], script: str, argument: str) -> int:
        """Submit ``script`` with one argument; the new job's id."""
        answer = self._run(["sbatch", "--parsable", "--export=ALL", *options, script, argument],
                           env=job_environment(os.environ))
        return int(answer.strip().split(";")[0])

    def signal(self, job_id: int, signal_name: str) -> None:
        """Signal every process of the job's batch step, or cancel it while it is pending."""
        try:
            self._run(["scancel", "--full", f"--signal={signal_name}", str(job_id)])
        except ClusterError:
            self.cancel(job_id, pending_only=True)

    def cancel(self, job_id: int, pending_only: bool = False) -> None:
        self._run(["scancel", *(["--state=PENDING"] if pending_only else []), str(job_id)])

    def jobs(self) -> list[Job]:
        """This user's jobs, ended ones included while the controller keeps them."""
        try:
            answer = json.loads(self._run(["squeue", "--json", "--me", "--states=all"]))
        except ValueError:
            raise ClusterError("squeue --json printed no JSON") from None
        errors = answer.get("errors") or []
        if errors:  # it exits 0 even when the controller did not answer
            first = errors[0]
            raise ClusterError(f"squeue: {first.get('description') or first.get('error')} "
                               f"({first.get('source', 'squeue')})")
        return [Job.from_squeue(job) for job in answer.get("jobs", [])]
