"""The local backend as the daemon builds it: the host's containment for this project, the
run limits it can enforce, and notes on the ones it cannot."""

from __future__ import annotations

import signal
from pathlib import Path

from starforge_daemon.runtime.api import Watcher
from starforge_daemon.runtime.local import containment
from starforge_daemon.runtime.local.client import ProcessRunner
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings

_LIMITS = (("AGENT_MEMORY_MAX", "memory", "memory.max"), ("AGENT_PIDS_MAX", "pids", "pids.max"))


def run_limits(settings: Settings, contained: containment.Containment,
               ) -> tuple[dict[str, str], list[str]]:
    """The cgroup limit files to write for each run, and one line per limit this host cannot
    enforce (never ignored silently)."""
    limits: dict[str, str] = {}
    notes = []
    for name, controller, limit_file in _LIMITS:
        value = getattr(settings, name)
        if value is None:
            continue
        if controller in contained.controllers:
            limits[limit_file] = str(value)
        else:
            why = contained.note or "no cgroup for runs"
            notes.append(f"{name}={value} cannot be enforced on this host: {why}")
    return limits, notes


def local_runner(paths: ProjectPaths, settings: Settings,
                 reactor: Watcher) -> tuple[ProcessRunner, list[str]]:
    """The keeper-backed runner, with its runs contained as well as this host allows; notes
    for the operator. Call before the keeper starts: under a delegated systemd unit, preparing
    moves the daemon into a leaf cgroup that the keeper then inherits."""
    contained = containment.prepare(containment.detect(Path(paths.root)))
    limits, notes = run_limits(settings, contained)
    runner = ProcessRunner(paths.keeper_socket, paths.keeper_log, paths.runs, reactor,
                           contained=contained, limits=limits,
                           stop_signal=signal.Signals[settings.AGENT_STOP_SIGNAL])
    return runner, notes
