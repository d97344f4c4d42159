"""The backend ``RUNNER`` names, as the daemon builds it: the local keeper, or Slurm (loaded
only when chosen)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starforge_daemon.runtime.api import Watcher
from starforge_daemon.runtime.local.client import ProcessRunner
from starforge_daemon.runtime.local.setup import local_runner
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import RunnerKind, Settings

if TYPE_CHECKING:
    from starforge_daemon.runtime.slurm.runner import SlurmRunner


def build_runner(paths: ProjectPaths, settings: Settings,
                 reactor: Watcher) -> tuple[ProcessRunner | SlurmRunner, list[str]]:
    """The runner and the notes for the operator; raises RunnerError when ``RUNNER=slurm`` and
    no Slurm controller answers."""
    if settings.RUNNER is not RunnerKind.SLURM:
        return local_runner(paths, settings, reactor)
    from starforge_daemon.runtime.slurm.setup import slurm_runner

    return slurm_runner(paths, settings, reactor)
