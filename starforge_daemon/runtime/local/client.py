"""The daemon's side of running agents: the only module that starts, signals or waits for them.

Agents are spawned by the project's keeper (``keeper.py``), which stays their parent across
daemon restarts; this module connects to it (starting it when none runs), asks it for runs and
turns its reports into events. Runs the keeper cannot report on (it died) are watched directly
through a pidfd, their exit status unknown.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from starforge_daemon.core.models import ProcessIdentity, RunExit
from starforge_daemon.runtime.local import keeper

KEEPER_START_TIMEOUT = 10.0
KEEPER = Path(keeper.__file__)


class RunnerError(Exception):
    """The keeper could not be started or reached."""


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: Path
    log_cap: int


@dataclass(frozen=True)
class Started:
    run_id: str
    agent: ProcessIdentity


@dataclass(frozen=True)
class Exited:
    """The run is over; ``exit`` is None when nobody recorded how it ended."""

    run_id: str
    exit: RunExit | None


RunEvent = Started | Exited


class Runner(Protocol):
    """What the engine needs from a runner; tests pass a scripted fake."""

    def connect(self) -> None: ...

    def wake(self) -> None: ...

    def launch(self, spec: LaunchSpec, journal: Path) -> None: ...

    def adopt(self, run_id: str, agent: ProcessIdentity | None) -> bool: ...

    def signal(self, agent: ProcessIdentity, number: int) -> None: ...

    def wait(self, timeout: float | None) -> list[RunEvent]: ...


def identity_of(pid: int) -> ProcessIdentity | None:
    try:
        return ProcessIdentity(pid=pid, create_time=psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def is_alive(process: ProcessIdentity) -> bool:
    """True only for the very process recorded: a reused pid does not count."""
    current = identity_of(process.pid)
    return current is not None and abs(current.create_time - process.create_time) < 0.05


def _signal_session(leader: ProcessIdentity, number: int) -> None:
    """Signal the run's process group and every process left in its session.

    The session id is the agent's pid. If that pid now belongs to someone else, the kernel may
    have handed the id to a new session, so nothing is signalled.
    """
    current = identity_of(leader.pid)
    if current is not None and abs(current.create_time - leader.create_time) >= 0.05:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader.pid, number)
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == leader.pid:
                os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            continue


def _exit_of(message: dict[str, Any]) -> RunExit:
    return RunExit(ended_at=message["ended_at"], exit_code=message["exit_code"],
                   error=message["error"])


class ProcessRunner:
    """Talks to the keeper and watches runs; ``wait`` is the daemon's one blocking point.

    ``wait`` returns when a run reports, when ``wake`` is called from another thread or a
    signal arrives, or when the timeout passes.
    """

    def __init__(self, socket_path: Path, keeper_log: Path) -> None:
        self._socket_path = socket_path
        self._keeper_log = keeper_log
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._channel: keeper.Channel | None = None
        self._keeper_process: subprocess.Popen[bytes] | None = None
        self._inflight: dict[str, ProcessIdentity | None] = {}  # runs the keeper holds
        self.keeper_runs: dict[str, ProcessIdentity] = {}  # what the keeper held when we came
        self._backlog: list[RunEvent] = []

    @property
    def wake_fd(self) -> int:
        """Write end for ``signal.set_wakeup_fd``."""
        return self._wake_write

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    # -- the keeper --------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the project's keeper (starting one if none listens) and read its hello."""
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(str(self._socket_path))
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                self._start_keeper()
                continue
            channel = keeper.Channel(sock)
            messages = self._await_hello(channel)
            if not messages:  # it was just exiting; the next try starts a fresh one
                sock.close()
                continue
            hello, *early = messages
            self._channel = channel
            self._backlog.extend(self._events(early))
            self._selector.register(sock, selectors.EVENT_READ, "keeper")
            self.keeper_runs = {run["run_id"]: ProcessIdentity(pid=run["pid"],
                                                                create_time=run["create_time"])
                                for run in hello["running"]}
            return
        raise RunnerError(f"cannot reach the keeper at {self._socket_path}")

    def _start_keeper(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._socket_path.unlink()  # nobody listens on it
        log = os.open(self._keeper_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                      0o644)
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(KEEPER), str(self._socket_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True, cwd="/")
        finally:
            os.close(log)
        assert process.stdout is not None
        with process.stdout:
            ready = selectors.DefaultSelector()
            ready.register(process.stdout, selectors.EVENT_READ)
            if not ready.select(KEEPER_START_TIMEOUT) or not process.stdout.readline():
                process.kill()
                process.wait()
                raise RunnerError(f"the keeper did not start (see {self._keeper_log})")
            ready.close()
        self._keeper_process = process

    @staticmethod
    def _await_hello(channel: keeper.Channel) -> list[dict[str, Any]]:
        """The hello and whatever came with it; empty when the keeper closed on us."""
        deadline = time.monotonic() + KEEPER_START_TIMEOUT
        waiting = selectors.DefaultSelector()
        waiting.register(channel.sock, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                waiting.select(deadline - time.monotonic())
                messages, closed = channel.receive()
                if messages or closed:
                    return messages
        finally:
            waiting.close()
        return []

    def _keeper_lost(self) -> list[RunEvent]:
        """The keeper died: watch its agents directly; the ones already gone are lost."""
        assert self._channel is not None
        self._selector.unregister(self._channel.sock)
        self._channel.sock.close()
        self._channel = None
        if self._keeper_process is not None:
            self._keeper_process.poll()
        events: list[RunEvent] = []
        for run_id, agent in list(self._inflight.items()):
            if not self.adopt(run_id, agent):
                events.append(Exited(run_id, None))
        self._inflight = {}
        return events

    # -- runs --------------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec, journal: Path) -> None:
        """Ask the keeper for the run; it appends to ``journal`` what becomes of it."""
        if self._channel is None:
            self.connect()
        assert self._channel is not None
        self._channel.send({"op": "spawn", "run_id": spec.run_id, "argv": spec.argv,
                            "env": spec.env, "cwd": spec.cwd, "log": str(spec.log_path),
                            "log_cap": spec.log_cap, "journal": str(journal)})
        self._inflight[spec.run_id] = None

    def adopt(self, run_id: str, agent: ProcessIdentity | None) -> bool:
        """Follow a run an earlier daemon started. False when it is certainly over."""
        if run_id in self.keeper_runs:
            self._inflight[run_id] = self.keeper_runs[run_id]
            return True
        if agent is None or not is_alive(agent):
            return False
        try:
            pidfd = os.pidfd_open(agent.pid)
        except ProcessLookupError:
            return False
        self._selector.register(pidfd, selectors.EVENT_READ, run_id)
        return True

    def signal(self, agent: ProcessIdentity, number: int) -> None:
        _signal_session(agent, number)

    def wait(self, timeout: float | None) -> list[RunEvent]:
        events, self._backlog = self._backlog, []
        if events:
            timeout = 0
        if self._channel is not None:
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._channel.wants_write
                                           else 0)
            self._selector.modify(self._channel.sock, mask, "keeper")
        for key, _ in self._selector.select(timeout):
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 4096):
                        pass
            elif key.data == "keeper":
                events.extend(self._from_keeper())
            else:  # a run watched directly ended; nobody recorded its status
                self._selector.unregister(key.fd)
                os.close(key.fd)
                events.append(Exited(key.data, None))
        return events

    def _from_keeper(self) -> list[RunEvent]:
        assert self._channel is not None
        self._channel.flush()
        messages, closed = self._channel.receive()
        events = self._events(messages)
        if closed:
            events.extend(self._keeper_lost())
        return events

    def _events(self, messages: list[dict[str, Any]]) -> list[RunEvent]:
        events: list[RunEvent] = []
        for message in messages:
            run_id = message["run_id"]
            if message["ev"] == "started":
                agent = ProcessIdentity(pid=message["pid"], create_time=message["create_time"])
                self._inflight[run_id] = agent
                events.append(Started(run_id, agent))
            elif message["ev"] == "exited":
                self._inflight.pop(run_id, None)
                events.append(Exited(run_id, _exit_of(message)))
        return events

    def close(self) -> None:
        """Let go of the keeper (it exits once its runs are over) and of our descriptors."""
        if self._channel is not None:
            self._selector.unregister(self._channel.sock)
            self._channel.sock.close()
        for key in list(self._selector.get_map().values()):
            if key.data not in ("wake",):
                os.close(key.fd)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
