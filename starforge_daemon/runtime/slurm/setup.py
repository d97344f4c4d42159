"""The Slurm backend as the daemon builds it (``RUNNER=slurm``), with notes on what a Slurm run
does not do that a local run does."""

from __future__ import annotations

import shlex
import signal

from starforge_daemon.runtime.api import RunnerError, Watcher
from starforge_daemon.runtime.local.containment import project_id
from starforge_daemon.runtime.slurm.cluster import Cluster, ClusterError
from starforge_daemon.runtime.slurm.runner import JobOptions, SlurmRunner
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings

_CGROUP_LIMITS = (("AGENT_MEMORY_MAX", "--mem"), ("AGENT_PIDS_MAX", None))


def slurm_notes(settings: Settings) -> list[str]:
    """One line per setting a Slurm run does not apply (never ignored silently)."""
    notes = []
    for name, instead in _CGROUP_LIMITS:
        if getattr(settings, name) is not None:
            hint = f"; ask Slurm with SLURM_EXTRA_ARGS={instead}=..." if instead else ""
            notes.append(f"{name} is not enforced with RUNNER=slurm{hint}")
    if settings.output_kind != "text":
        notes.append("RUNNER=slurm reads each run's output as text: no live progress, cost, "
                     "event watchdogs or MAX_RUN_COST_USD for its runs")
    return notes


def slurm_runner(paths: ProjectPaths, settings: Settings,
                 reactor: Watcher) -> tuple[SlurmRunner, list[str]]:
    """The runner that submits each run as a batch job; raises RunnerError when no Slurm
    controller answers (a start refuses then, in one line)."""
    try:
        Cluster().ping()
    except ClusterError as error:
        raise RunnerError(f"RUNNER=slurm but no Slurm controller answers: {error}") from None
    options = JobOptions(job_prefix=f"sf-{project_id(paths.root)}.",
                         partition=settings.SLURM_PARTITION,
                         extra=tuple(shlex.split(settings.SLURM_EXTRA_ARGS)),
                         kill_grace=settings.AGENT_KILL_GRACE)
    runner = SlurmRunner(Cluster(), paths, reactor, options=options,
                         stop_signal=signal.Signals[settings.AGENT_STOP_SIGNAL])
    return runner, slurm_notes(settings)
