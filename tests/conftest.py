"""Fixtures for tests that run the real daemon on real processes in a temporary project."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from starforge_daemon.runtime.local import containment
from starforge_daemon.store.paths import ProjectPaths

AGENT = Path(__file__).with_name("agent.py")


def pytest_configure(config: pytest.Config) -> None:
    """A base folder of this session's own, short: a daemon's socket paths under pytest-xdist's
    default one pass AF_UNIX's 108 bytes, and a fixed one would be emptied under a session
    that runs at the same time."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="sf-", dir="/tmp")
        config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))
AGENT_COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(AGENT))}"
FOLDERS = {"done": "processed", "failed": "processed/failed", "invalid": "processed/invalid"}


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = ProjectPaths(root)
        self.settings: dict[str, Any] = {
            "AGENT_COMMAND": AGENT_COMMAND,
            "AGENT_KILL_GRACE": 1,
            "TRIGGER_SETTLE_SECONDS": 0.5,
            "PROCESS_MONITOR_INTERVAL": 1,
        }

    def write_env(self, **settings: Any) -> None:
        self.settings.update(settings)
        lines = [f"{key}={shlex.quote(str(value))}" for key, value in self.settings.items()]
        (self.root / ".env").write_text("\n".join(lines) + "\n")

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "starforge_daemon", "--project-dir", str(self.root), *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"starforge {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def start(self, **settings: Any) -> int:
        self.write_env(**settings)
        self.cli("daemon", "start")
        return self.daemon_pid()

    def stop(self) -> None:
        self.cli("daemon", "stop")

    def daemon_pid(self) -> int:
        return int(self.paths.pid_file.read_text())

    def trigger(self, name: str, to_agent: str = "agent-a", *, mtime_ns: int | None = None,
                **fields: Any) -> Path:
        """Write a trigger the way agents should: a hidden temp file renamed into place."""
        self.paths.triggers.mkdir(parents=True, exist_ok=True)
        body = {"to_agent": to_agent, **fields}
        temp = self.paths.triggers / f".{name}.tmp"
        temp.write_text(json.dumps(body))
        if mtime_ns is not None:
            os.utime(temp, ns=(mtime_ns, mtime_ns))
        target = self.paths.triggers / name
        os.rename(temp, target)
        return target

    def raw_trigger(self, name: str, data: bytes) -> Path:
        self.paths.triggers.mkdir(parents=True, exist_ok=True)
        temp = self.paths.triggers / f".{name}.tmp"
        temp.write_bytes(data)
        os.rename(temp, self.paths.triggers / name)
        return self.paths.triggers / name

    def open_gate(self, gate: str) -> None:
        """Let the run whose trigger says ``context={"gate": gate}`` end (tests/agent.py)."""
        (self.root / gate).touch()

    def archived(self, folder: str) -> list[str]:
        base = self.paths.triggers / FOLDERS[folder]
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.name.endswith(".trigger"))

    def all_archived(self) -> dict[str, str]:
        return {name: folder for folder in FOLDERS for name in self.archived(folder)}

    def result(self, name: str) -> dict[str, Any]:
        for folder in FOLDERS.values():
            path = self.paths.triggers / folder / f"{name}.result.json"
            if path.exists():
                return json.loads(path.read_text())
        raise AssertionError(f"no result file for {name}")

    def wait_archived(self, count: int, timeout: float = 20.0) -> dict[str, str]:
        wait_until(lambda: len(self.all_archived()) >= count, timeout,
                   f"{count} archived triggers (have {self.all_archived()})")
        return self.all_archived()

    def history(self, count: int = 0, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The run history's records, once it holds at least ``count`` (the daemon appends a
        trigger's line just after it archived the trigger)."""
        def lines() -> list[str]:
            path = self.paths.history_file
            return path.read_text().splitlines() if path.exists() else []
        wait_until(lambda: len(lines()) >= count, timeout, f"{count} lines in the run history")
        return [json.loads(line) for line in lines()]

    def journal(self, event: str | None = None) -> list[dict[str, Any]]:
        path = self.root / "journal.jsonl"
        if not path.exists():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [e for e in entries if event is None or e["event"] == event]

    def started(self) -> list[str]:
        """The triggers whose runs started, in the order the journal shows their starts."""
        return [entry["trigger"] for entry in self.journal("start")]

    def slots(self) -> dict[str, Any]:
        return json.loads(self.paths.slots_file.read_text())

    def log(self) -> str:
        return self.paths.daemon_log.read_text() if self.paths.daemon_log.exists() else ""


def processes_of(root: Path) -> list[psutil.Process]:
    """Every process working in ``root``, told it belongs to that project, or (the keeper,
    which works in ``/``) serving that project's keeper socket."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            cwd = proc.cwd()
            mine = cwd == str(root) or cwd.startswith(f"{root}/")
            if not mine:
                mine = proc.environ().get("STARFORGE_PROJECT_DIR") == str(root)
            if not mine:
                mine = any(arg.startswith(f"{root}/") for arg in proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if mine:
            found.append(proc)
    return found


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".claude").mkdir()  # what `starforge init` makes: the CLI finds the project by it
    proj = Project(root.resolve())
    yield proj
    if proj.paths.pid_file.exists():
        proj.cli("daemon", "stop", check=False)
    # the keeper leaves on its own once its daemon is gone; give it a moment to do so
    _, leftovers = psutil.wait_procs(processes_of(proj.root), timeout=3)
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=5)
    assert not leftovers, f"test left processes behind: {[p.pid for p in leftovers]}"
    left = project_cgroup(proj.root)
    if left is not None:
        remove_empty_cgroups(left)  # so the next test starts clean, then say so
        raise AssertionError(f"test left the project's cgroup behind: {left}")


def project_cgroup(root: Path) -> str | None:
    """The project's cgroup folder when it exists (the daemon makes it, its stop removes it)."""
    folder = containment.detect(root).project
    return folder if folder is not None and os.path.isdir(folder) else None


def remove_empty_cgroups(folder: str) -> None:
    for path, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(path)
