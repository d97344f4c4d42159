"""A daemon's start under a delegated unit (for tests/test_containment.py).

Usage: containment_unit.py PROJECT_DIR RUN_ID    (started inside the unit's cgroup)

Detects and prepares the containment as the daemon would, then starts a run as the keeper
would: ``cat /proc/self/cgroup`` spawned into the run's cgroup, and ends it. Prints JSON: the
containment, this process's cgroup after ``prepare`` and after the spawn, and what the run saw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "starforge_daemon" / "runtime" / "local"))
import containment


def main(project: str, run_id: str) -> None:
    prepared = containment.prepare(containment.detect(project, force_sweep=False))
    after_prepare = Path("/proc/self/cgroup").read_text()
    run = prepared.run(run_id)
    run.create()
    with tempfile.NamedTemporaryFile("r") as seen:
        pid = run.spawn(["cat", "/proc/self/cgroup"], os.environ,
                        file_actions=[(os.POSIX_SPAWN_OPEN, 1, seen.name, os.O_WRONLY, 0)])
        after_spawn = Path("/proc/self/cgroup").read_text()
        os.waitpid(pid, 0)
        ended = run.end()
        print(json.dumps({"containment": dataclasses.asdict(prepared), "text": prepared.text,
                          "after_prepare": after_prepare, "after_spawn": after_spawn,
                          "run_saw": seen.read(), "removed": ended.removed}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
