"""The only module that starts, signals and waits for agent processes.

Every run has a small *monitor* process between the daemon and the agent: a fork of the daemon
that spawns the agent (no shell, its own session), records the agent's pid, waits for it and
writes its real exit status to disk. The monitor outlives a crashed daemon, so the next daemon
can adopt the run and still learn how it ended.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from .files import read_model, write_atomic
from .models import ProcessIdentity, RunExit, RunStarted

_SPAWN_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
_PUMP_CHUNK = 1 << 16
_MONITOR_IGNORES = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGPIPE)


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: Path
    started_file: Path
    exit_file: Path
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

    def wake(self) -> None: ...

    def launch(self, spec: LaunchSpec) -> None: ...

    def adopt(self, run_id: str, started: RunStarted, exit_file: Path) -> bool: ...

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


def _close_all_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


class _CappedLog:
    """Appends to a run's log but never lets it pass ``cap`` bytes.

    On overflow the file is cut back to its first half and a marker; the newest output
    follows, so a runaway agent keeps both how it started and how it ended.
    """

    MARKER = b"\n[starforge: output over LOG_MAX_BYTES dropped here; the latest output follows]\n"

    def __init__(self, fd: int, cap: int) -> None:
        self._fd = fd
        self._cap = cap
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self._cap:
            head = min(self._size, self._cap // 2)
            os.ftruncate(self._fd, head)
            os.write(self._fd, self.MARKER)
            self._size = head + len(self.MARKER)
            data = data[-(self._cap - self._size):]
        os.write(self._fd, data)
        self._size += len(data)


def _spawn_agent(spec: LaunchSpec, output_fd: int) -> int:
    return os.posix_spawnp(
        spec.argv[0], spec.argv, spec.env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, output_fd, 1),
            (os.POSIX_SPAWN_DUP2, output_fd, 2),
        ],
        setsid=True,
        setsigdef=_SPAWN_DEFAULT_SIGNALS,
        setsigmask=(),
    )


def _pump_until_exit(pid: int, output: int, log: _CappedLog) -> int:
    """Copy the agent's output into its log until the agent exits; returns its wait status.

    The exit is what counts: a grandchild still holding the pipe does not keep the run open.
    """
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(output, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == pidfd:
                _, wait_status = os.waitpid(pid, 0)
                os.set_blocking(output, False)
                with contextlib.suppress(BlockingIOError):
                    for _ in range(64):  # what is already buffered, not what keeps coming
                        chunk = os.read(output, _PUMP_CHUNK)
                        if not chunk:
                            break
                        log.write(chunk)
                return wait_status
            chunk = os.read(output, _PUMP_CHUNK)
            if chunk:
                log.write(chunk)
            else:
                poller.unregister(output)


def _monitor(spec: LaunchSpec, report_fd: int, log_fd: int) -> None:
    """Body of the forked monitor process. Never returns."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for number in _MONITOR_IGNORES:
            signal.signal(number, signal.SIG_IGN)
        os.setsid()
        _close_all_but({report_fd, log_fd})
        me = ProcessIdentity(pid=os.getpid(), create_time=psutil.Process().create_time())
        write_atomic(spec.started_file, RunStarted(monitor=me).model_dump_json().encode())
        output, agent_output = os.pipe()
        try:
            os.chdir(spec.cwd)
            pid = _spawn_agent(spec, agent_output)
        except (OSError, ValueError) as error:
            reason = f"could not start {spec.argv[0]!r}: {getattr(error, 'strerror', None) or error}"
            os.write(log_fd, f"starforge: {reason}\n".encode())
            done = RunExit(ended_at=time.time(), error=reason)
            write_atomic(spec.exit_file, done.model_dump_json().encode())
            status = 0
            return
        os.close(agent_output)
        agent = identity_of(pid) or ProcessIdentity(pid=pid, create_time=0.0)
        started = RunStarted(monitor=me, agent=agent)
        with contextlib.suppress(OSError):  # the agent runs; failing to note it must not orphan it
            write_atomic(spec.started_file, started.model_dump_json().encode())
        with contextlib.suppress(OSError):  # the daemon may be gone; the files tell the next one
            os.write(report_fd, f"{pid} {agent.create_time!r}\n".encode())
        wait_status = _pump_until_exit(pid, output, _CappedLog(log_fd, spec.log_cap))
        ended_at = time.time()
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # whatever the agent left behind in its group
        done = RunExit(ended_at=ended_at, exit_code=os.waitstatus_to_exitcode(wait_status))
        write_atomic(spec.exit_file, done.model_dump_json().encode())
        status = 0
    finally:
        os._exit(status)


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


class ProcessRunner:
    """Starts monitors, watches them (or adopted processes) and reports what happened.

    ``wait`` is the daemon's one blocking point: it returns when a run reports, when ``wake``
    is called from another thread or a signal arrives, or when the timeout passes.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._exit_files: dict[str, Path] = {}

    @property
    def wake_fd(self) -> int:
        """Write end for ``signal.set_wakeup_fd``."""
        return self._wake_write

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def launch(self, spec: LaunchSpec) -> None:
        log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                         0o644)
        try:
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                raise
            if pid == 0:
                _monitor(spec, write_fd, log_fd)
            os.close(write_fd)
        finally:
            os.close(log_fd)
        os.set_blocking(read_fd, False)
        self._exit_files[spec.run_id] = spec.exit_file
        self._selector.register(read_fd, selectors.EVENT_READ, (spec.run_id, pid, b""))

    def adopt(self, run_id: str, started: RunStarted, exit_file: Path) -> bool:
        """Watch a run started by an earlier daemon. False when neither process is alive."""
        for process in (started.monitor, started.agent):
            if process is None or not is_alive(process):
                continue
            try:
                pidfd = os.pidfd_open(process.pid)
            except ProcessLookupError:
                continue
            self._exit_files[run_id] = exit_file
            self._selector.register(pidfd, selectors.EVENT_READ, (run_id, None, None))
            return True
        return False

    def signal(self, agent: ProcessIdentity, number: int) -> None:
        _signal_session(agent, number)

    def wait(self, timeout: float | None) -> list[RunEvent]:
        events: list[RunEvent] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 4096):
                        pass
                continue
            run_id, monitor_pid, pending = key.data
            if monitor_pid is None:  # adopted: a pidfd became readable, the process is gone
                events.append(self._finish(key.fd, run_id, None))
                continue
            try:
                chunk = os.read(key.fd, 4096)
            except BlockingIOError:
                continue
            if chunk:
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    pid, create_time = line.split()
                    events.append(Started(run_id, ProcessIdentity(pid=int(pid),
                                                                  create_time=float(create_time))))
                self._selector.modify(key.fd, selectors.EVENT_READ, (run_id, monitor_pid, pending))
            else:
                events.append(self._finish(key.fd, run_id, monitor_pid))
        return events

    def _finish(self, fd: int, run_id: str, monitor_pid: int | None) -> Exited:
        self._selector.unregister(fd)
        os.close(fd)
        if monitor_pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(monitor_pid, 0)
        return Exited(run_id, read_model(self._exit_files.pop(run_id), RunExit))

    def close(self) -> None:
        for key in list(self._selector.get_map().values()):
            os.close(key.fd)
        self._selector.close()
        os.close(self._wake_write)

