"""``starforge daemon status --check``: is the daemon well, in one line for scripts.

The daemon's loop answers a ``health`` request on the control socket itself, so an answer
shows that the loop turns; the answer says whether the keeper is connected. The same verdict
as ``/healthz`` (``daemon/health.py``), without needing ``METRICS_ADDRESS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starforge_daemon.store.control_socket import ControlError, request
from starforge_daemon.store.instance import running_pid
from starforge_daemon.store.paths import ProjectPaths

CHECK_TIMEOUT = 5.0  # seconds the loop may take to answer


@dataclass(frozen=True)
class Health:
    healthy: bool
    line: str


def check_health(paths: ProjectPaths, timeout: float = CHECK_TIMEOUT) -> Health:
    pid = running_pid(paths)
    if pid is None:
        return Health(False, "unhealthy: the daemon is not running")
    asked = time.monotonic()
    try:
        answer = request(paths.control_socket, {"op": "health"}, timeout=timeout)
    except ControlError as error:
        return Health(False, f"unhealthy: daemon pid {pid}: {error}")
    if not answer.get("ok"):
        return Health(False, f"unhealthy: daemon pid {pid}: {answer.get('error')}")
    if not answer.get("keeper"):
        return Health(False, f"unhealthy: daemon pid {pid} answers, but its keeper is not "
                             "connected (it ended; the next run starts a new one)")
    took = (time.monotonic() - asked) * 1000
    return Health(True, f"healthy: daemon pid {pid} answered in {took:.0f} ms; keeper connected")
