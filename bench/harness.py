"""A throwaway project with a real daemon in it: its settings, its queue, starting and stopping
it through the CLI, and reading back what it wrote (run history, event log, agent logs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from starforge_daemon.core.models import parse_iso_utc
from starforge_daemon.store.history import read_history
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import ResultRecord
from starforge_daemon.store.settings import SETTINGS

STARFORGE = [sys.executable, "-m", "starforge_daemon"]
CLI_TIMEOUT = 300.0
EXIT_TIMEOUT = 15.0
# Read the event log whole: no rotation while a scenario runs.
EVENT_LOG_BYTES = 1 << 30
# Never passed on to the daemon: the project's .env alone decides its settings.
SCRUBBED = (*(item.name for item in SETTINGS), "STARFORGE_PROJECT_DIR", "NOTIFY_SOCKET",
            "WATCHDOG_USEC", "WATCHDOG_PID")


class BenchError(Exception):
    """A scenario could not be measured; the message says why."""


def has_fraction(text: str) -> bool:
    """Whether an ISO time carries sub-second precision (the history had whole seconds once)."""
    return "." in text


# -- the queue -------------------------------------------------------------------------------

def trigger_body(agent: str) -> bytes:
    return json.dumps({"to_agent": agent}).encode()


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_triggers(folder: Path, agents: Sequence[str], count: int, edges: bool = False,
                   first: int = 0) -> None:
    """Queue ``count`` triggers, round-robin over ``agents``, oldest first by name and mtime;
    with ``edges``, every other one comes ``after`` the one before it (``count // 2`` edges).

    Plain os calls with a hidden temporary name and a rename, as a well-behaved writer does;
    fast enough for 50,000. ``first`` numbers them on from an earlier batch.
    """
    bodies = [trigger_body(agent) for agent in agents]
    base = str(folder)
    for index in range(first, first + count):
        name = f"t{index:07d}.trigger"
        temp = os.path.join(base, f".{name}.tmp")
        agent = agents[index % len(agents)]
        body = json.dumps({"to_agent": agent, "after": [f"t{index - 1:07d}"]}).encode() \
            if edges and index % 2 else bodies[index % len(bodies)]
        _write_file(temp, body)
        os.rename(temp, os.path.join(base, name))


def drop_trigger(folder: Path, name: str, agent: str) -> float:
    """Write one trigger under a hidden name and rename it into place; the time of the rename."""
    temp = folder / f".{name}.tmp"
    _write_file(str(temp), trigger_body(agent))
    renamed_at = time.time()
    os.rename(temp, folder / name)
    return renamed_at


# -- what the daemon wrote -------------------------------------------------------------------

class HistoryFile:
    """Follows ``runs.jsonl`` (one line per finished run) as it grows."""

    def __init__(self, paths: ProjectPaths) -> None:
        self._path = paths.history_file
        self._daemon_log = paths.daemon_log
        self._offset = 0
        self.count = 0

    def poll(self) -> int:
        """Lines written so far; reads only what was appended since the last call."""
        try:
            with open(self._path, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return 0
        end = chunk.rfind(b"\n") + 1  # a line being written is counted next time
        self._offset += end
        self.count += chunk.count(b"\n", 0, end)
        return self.count

    def wait_for(self, count: int, stall: float = 60.0, interval: float = 0.02) -> None:
        """Block until ``count`` runs have finished; fail when nothing moves for ``stall`` s."""
        seen, moved_at = self.poll(), time.monotonic()
        while seen < count:
            time.sleep(interval)
            now = self.poll()
            if now != seen:
                seen, moved_at = now, time.monotonic()
            elif time.monotonic() - moved_at > stall:
                raise BenchError(f"stalled: {seen} of {count} runs finished, none in {stall:g} s "
                                 f"(see {self._daemon_log})")

    def records(self) -> list[ResultRecord]:
        records, unreadable = read_history(self._path)
        if unreadable:
            raise BenchError(f"{unreadable} unreadable lines in {self._path}")
        return records


@dataclass(frozen=True)
class Event:
    at: float
    word: str
    line: str

    def field(self, key: str) -> str | None:
        """The value of ``key=value`` in the line (plain values only: names and run ids)."""
        found = re.search(rf"\b{re.escape(key)}=(\S+)", self.line)
        return found.group(1) if found else None


def read_events(path: Path, words: frozenset[str]) -> list[Event]:
    """The daemon log's events named in ``words``: ``<ISO time> <LEVEL> <EVENT> key=value...``."""
    events = []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2] in words:
                events.append(Event(parse_iso_utc(parts[0]), parts[2], line.rstrip("\n")))
    return events


def printed_time(log_path: str) -> float:
    """What a ``date +%s.%N`` agent printed: the moment it ran (its last line)."""
    lines = Path(log_path).read_text().split()
    if not lines:
        raise BenchError(f"the agent printed nothing into {log_path}")
    return float(lines[-1])


def check_succeeded(records: list[ResultRecord]) -> None:
    failed = [record for record in records if record.outcome != "succeeded"]
    if failed:
        first = failed[0]
        raise BenchError(f"{len(failed)} runs did not succeed, e.g. {first.trigger}: "
                         f"{first.outcome} ({first.reason})")


# -- the project and its daemon --------------------------------------------------------------

def _env_line(key: str, value: str) -> str:
    if any(char in value for char in '"\\$\n'):
        raise ValueError(f"{key}: the bench writes settings without quoting tricks: {value!r}")
    return f'{key}="{value}"\n'


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"


def daemon_environment() -> dict[str, str]:
    """The bench's environment without any daemon setting (the real environment would win)."""
    return {key: value for key, value in os.environ.items() if key not in SCRUBBED}


@dataclass
class Daemon:
    """A started daemon: its processes and the moments that frame a measurement."""

    process: psutil.Process
    keeper: psutil.Process | None
    invoked_at: float  # just before ``starforge daemon start`` was run
    ready_at: float  # the READY event in the daemon log

    def processes(self) -> dict[str, psutil.Process]:
        found = {"daemon": self.process}
        if self.keeper is not None:
            found["keeper"] = self.keeper
        return found


@dataclass
class Project:
    paths: ProjectPaths
    notes: list[str] = field(default_factory=list)
    package_tree: Path | None = None  # the daemon's code from this tree (another revision's)

    @classmethod
    def create(cls, parent: Path, name: str, settings: dict[str, str]) -> Project:
        project = cls(ProjectPaths(Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))))
        text = "".join(_env_line(key, value) for key, value in
                       {"DAEMON_LOG_MAX_BYTES": str(EVENT_LOG_BYTES), **settings}.items())
        project.paths.env_file.write_text(text)
        project.paths.triggers.mkdir(parents=True)
        return project

    @property
    def root(self) -> Path:
        return self.paths.root

    def cli(self, *words: str) -> subprocess.CompletedProcess[str]:
        environment = daemon_environment()
        if self.package_tree is not None:
            environment["PYTHONPATH"] = str(self.package_tree)
        return subprocess.run([*STARFORGE, "--project-dir", str(self.root), *words],
                              env=environment, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, check=False)

    def start(self) -> Daemon:
        invoked_at = time.time()
        result = self.cli("daemon", "start")
        if result.returncode != 0:
            raise BenchError(f"starforge daemon start failed: {_said(result)}")
        pid = int(self.paths.pid_file.read_text())
        ready = read_events(self.paths.daemon_log, frozenset({"READY"}))
        if not ready:
            raise BenchError("the daemon reported ready but logged no READY event")
        return Daemon(psutil.Process(pid), self._find_keeper(), invoked_at, ready[-1].at)

    def _find_keeper(self) -> psutil.Process | None:
        """The keeper is the process running ``keeper.py`` on this project's socket; of two,
        the child (the parent is its reaper, which only waits)."""
        socket_path = str(self.paths.keeper_socket)
        found = [process for process in psutil.process_iter(["cmdline", "ppid"])
                 if socket_path in (cmdline := process.info["cmdline"] or [])
                 and any(word.endswith("keeper.py") for word in cmdline)]
        pids = {process.pid for process in found}
        for process in found:
            if len(found) == 1 or process.info["ppid"] in pids:
                return process
        self.notes.append("keeper process not found; its figures are missing")
        return None

    def stop(self, daemon: Daemon | None) -> None:
        """``starforge daemon stop``, then make sure nothing of this project is left running."""
        result = self.cli("daemon", "stop")
        if result.returncode != 0:
            self.notes.append(f"daemon stop failed: {_said(result)}")
        watched = list(daemon.processes().values()) if daemon else []
        _, alive = psutil.wait_procs(watched, timeout=EXIT_TIMEOUT)
        leftovers = {process.pid: process for process in [*alive, *self._agents_left()]}
        for process in leftovers.values():
            self.notes.append(f"left running after stop, killed: pid {process.pid} "
                              f"{' '.join(process.cmdline()[:4])}")
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(list(leftovers.values()), timeout=EXIT_TIMEOUT)

    def _agents_left(self) -> list[psutil.Process]:
        """Agents run in the project root; anything still there after a stop is a leftover."""
        found = []
        for process in psutil.process_iter(["cwd"]):
            if process.info["cwd"] == str(self.root) and process.pid != os.getpid():
                found.append(process)
        return found

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running(project: Project) -> Iterator[Daemon]:
    """A started daemon that is always stopped again, whatever happens in between."""
    daemon = None
    try:
        daemon = project.start()
        yield daemon
    finally:
        project.stop(daemon)


def wait_for_events(path: Path, word: str, count: int, timeout: float) -> list[Event]:
    """Block until the daemon log holds ``count`` ``word`` events; they, in log order."""
    deadline = time.monotonic() + timeout
    while True:
        events = read_events(path, frozenset({word}))
        if len(events) >= count:
            return events
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(events)} of {count} {word} events after {timeout:g} s")
        time.sleep(0.05)
