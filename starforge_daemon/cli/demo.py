"""``starforge demo``: a throw-away project, a handful of triggers, the real daemon draining them.

The demo works only in a folder of its own: a new one, an empty one, or one an earlier demo
made (marked by a ``.starforge-demo`` file); any other folder is refused and left untouched, so
a mistyped ``--dir`` never costs a real project its ``.env`` or its queue. The caller's
environment does not steer it either: see :func:`caller_settings_set_aside`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from starforge_daemon.client import control
from starforge_daemon.client.submit import submit_trigger
from starforge_daemon.daemon import service
from starforge_daemon.daemon.service import DAEMON_ONLY_VARIABLES
from starforge_daemon.store.instance import running_pid
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import SETTINGS, SettingsError, load_settings

MARKER = ".starforge-demo"
DEMO_SETTINGS = {
    "PARALLEL_DAEMON": "true",
    "MAX_CONCURRENT_AGENTS": "3",
    "PROCESS_MONITOR_INTERVAL": "2",
    "AGENT_COMMAND": f"{shlex.quote(sys.executable)} -m starforge_daemon.example_agent",
}
DEMO_TRIGGERS = (
    ("junior-dev-a", "implement_ticket", 52),
    ("junior-dev-b", "implement_ticket", 53),
    ("junior-dev-a", "implement_ticket", 54),
    ("qa-engineer", "fail", 55),
)
DRAIN_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class DemoRefused(Exception):
    """The demo will not work in this folder; the message says why, in one line."""


def claim_folder(directory: str | None) -> ProjectPaths:
    """The demo's project, marked as such: a new temporary folder, or ``directory`` when it is
    empty or an earlier demo's (whose ``.claude/`` is cleared). Raises :class:`DemoRefused`
    for any other folder, having changed nothing there; OSError when it cannot be used."""
    if directory is None:
        root = Path(tempfile.mkdtemp(prefix="starforge-demo-"))
    else:
        root = Path(directory).resolve()
        root.mkdir(parents=True, exist_ok=True)
    paths = ProjectPaths(root)
    if (root / MARKER).is_file():
        pid = running_pid(paths)
        if pid is not None:
            raise DemoRefused(f"the daemon of an earlier demo (pid {pid}) still runs in {root}; "
                              f"stop it: starforge --project-dir {shlex.quote(str(root))} "
                              "daemon stop")
        if paths.claude.exists():
            shutil.rmtree(paths.claude)
    elif any(root.iterdir()):
        raise DemoRefused(f"{root} is not empty and no earlier demo made it; nothing was "
                          "changed there (give --dir a new or empty folder)")
    (root / MARKER).write_text("made by `starforge demo`, which clears this folder's .claude/ "
                               "and rewrites its .env when it runs here again\n")
    return paths


@contextlib.contextmanager
def caller_settings_set_aside() -> Iterator[None]:
    """Without the caller's settings (``AGENT_COMMAND``, ``PARALLEL_DAEMON``...), its
    ``STARFORGE_*`` variables and its systemd ones, while the demo runs.

    The real environment wins over ``.env``, and the demo's daemon inherits this process's
    environment and hands it on to the agents, whose handoffs read the settings too; so the
    demo's own ``.env`` decides only once they are out of the way.
    """
    names = {item.name for item in SETTINGS} | set(DAEMON_ONLY_VARIABLES)
    names |= {name for name in os.environ if name.startswith("STARFORGE_")}
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _queue_demo_work(paths: ProjectPaths) -> None:
    """The demo's ``.env`` and its triggers, one of them broken on purpose."""
    paths.ensure()
    paths.env_file.write_text("".join(f"{name}={value}\n" for name, value in DEMO_SETTINGS.items()))
    for to_agent, action, ticket in DEMO_TRIGGERS:
        submit_trigger(to_agent, project_dir=paths.root, action=action, ticket=ticket,
                       from_agent="orchestrator")
    (paths.triggers / "broken.trigger").write_text("{not json")


def _drained(paths: ProjectPaths) -> bool:
    doc = control.status(paths)
    return doc["queue"]["pending"] == 0 and doc["queue"]["running"] == 0


def _drain(paths: ProjectPaths, say: Callable[[str], None]) -> bool:
    """Start the daemon, wait until the queue is empty, stop it; False when it did not drain."""
    pid = service.start_in_background(paths, load_settings(paths)).pid
    say(f"daemon started (pid {pid}); draining...")
    deadline = time.monotonic() + DRAIN_TIMEOUT
    try:
        while not _drained(paths):
            if time.monotonic() > deadline:
                say("the queue did not drain in time")
                return False
            time.sleep(0.2)
    finally:
        control.stop(paths, timeout=STOP_TIMEOUT)
    return True


def _run(paths: ProjectPaths, say: Callable[[str], None]) -> int:
    try:
        _queue_demo_work(paths)
    except OSError as error:
        say(f"cannot set the demo up: {error.strerror} ({error.filename})")
        return 1
    say(f"demo project: {paths.root}")
    say(f"queued {len(DEMO_TRIGGERS) + 1} triggers (one of them broken on purpose)")
    try:
        if not _drain(paths, say):
            return 1
    except (service.StartError, SettingsError) as error:
        say(f"the demo daemon cannot start: {error}")
        return 1
    except TimeoutError as error:
        say(f"the demo daemon did not stop: {error}")
        return 1
    say(f"drained: {control.status(paths)['queue']}")
    for folder in (paths.processed, paths.failed, paths.invalid):
        for path in sorted(folder.glob("*.trigger")):
            say(f"  {path.relative_to(paths.root)}")
    say(f"event log: {paths.daemon_log}")
    return 0


def run_demo(directory: str | None, say: Callable[[str], None]) -> int:
    try:
        paths = claim_folder(directory)
    except DemoRefused as error:
        say(f"demo refused: {error}")
        return 1
    except OSError as error:
        say(f"cannot use {error.filename}: {error.strerror}")
        return 1
    with caller_settings_set_aside():
        return _run(paths, say)
