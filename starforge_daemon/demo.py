"""``starforge demo``: a throw-away project, a handful of triggers, the real daemon draining them."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import control, service
from .config import load_settings
from .paths import ProjectPaths
from .submit import submit_trigger

DEMO_TRIGGERS = (
    ("junior-dev-a", "implement_ticket", 52),
    ("junior-dev-b", "implement_ticket", 53),
    ("junior-dev-a", "implement_ticket", 54),
    ("qa-engineer", "fail", 55),
)
DRAIN_TIMEOUT = 60.0


def _drained(paths: ProjectPaths) -> bool:
    doc = control.status(paths)
    return doc["queue"]["pending"] == 0 and doc["queue"]["running"] == 0


def run_demo(directory: str | None, say: Callable[[str], None]) -> int:
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="starforge-demo-"))
    paths = ProjectPaths.resolve(root)
    paths.ensure()
    agent = f"{shlex.quote(sys.executable)} -m starforge_daemon.example_agent"
    paths.env_file.write_text(
        "PARALLEL_DAEMON=true\nMAX_CONCURRENT_AGENTS=3\nPROCESS_MONITOR_INTERVAL=2\n"
        f"AGENT_COMMAND={agent}\n"
    )
    for to_agent, action, ticket in DEMO_TRIGGERS:
        submit_trigger(to_agent, project_dir=root, action=action, ticket=ticket,
                       from_agent="orchestrator")
    (paths.triggers / "broken.trigger").write_text("{not json")
    say(f"demo project: {root}")
    say(f"queued {len(DEMO_TRIGGERS) + 1} triggers (one of them broken on purpose)")
    pid = service.start_in_background(paths, load_settings(paths))
    say(f"daemon started (pid {pid}); draining...")
    deadline = time.monotonic() + DRAIN_TIMEOUT
    try:
        while not _drained(paths):
            if time.monotonic() > deadline:
                say("the queue did not drain in time")
                return 1
            time.sleep(0.2)
    finally:
        control.stop(paths, timeout=30)
    doc = control.status(paths)
    say(f"drained: {doc['queue']}")
    for folder in (paths.processed, paths.failed, paths.invalid):
        for path in sorted(folder.glob("*.trigger")):
            say(f"  {path.relative_to(root)}")
    say(f"event log: {paths.daemon_log}")
    return 0
