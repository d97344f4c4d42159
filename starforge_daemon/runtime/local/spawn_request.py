"""The keeper's spawn request for a run (``keeper.py`` documents the protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starforge_daemon.runtime.api import LaunchSpec
from starforge_daemon.runtime.local.run_container import RunContainer


def spawn_request(spec: LaunchSpec, held: Mapping[str, str], container: RunContainer,
                  limits: Mapping[str, str]) -> dict[str, Any]:
    """The request for ``spec``, its environment as it differs from ``held`` (the one the
    keeper holds for this connection; empty for a keeper that takes each whole environment)."""
    request: dict[str, Any] = {
        "op": "spawn", "run_id": spec.run_id, "argv": spec.argv,
        "env": {name: value for name, value in spec.env.items() if held.get(name) != value},
        "cwd": spec.cwd, "stdin": None if spec.stdin is None else str(spec.stdin),
        "log": str(spec.log_path), "log_cap": spec.log_cap, "journal": str(spec.journal),
        "cgroup": container.cgroup, "shared_cgroup": container.shared, "output": spec.output,
        "limits": limits}
    unset = [name for name in held if name not in spec.env]
    if unset:
        request["unset"] = unset
    if spec.after is not None:
        request["after"] = spec.after
    return request
