"""The keeper: the parent of every agent run, so that a run outlives the daemon that asked for it.

The daemon starts one keeper per project (``python3 -I -S keeper.py SOCKET``: standard library
only, so it starts fast and shares no state) and talks to it over a Unix stream socket. The
keeper spawns agents with ``posix_spawn`` in their own sessions, copies their output into
capped logs, waits for them and appends what happened to each run's journal
(``.claude/daemon/runs/*.jsonl``) before telling the daemon. When the daemon dies the keeper
carries on; the next daemon connects, learns which runs are still going, and reads the journals
for the ones that ended meanwhile. With no daemon connected and no run left, the keeper exits.

Each run lives in its own container (``run_container``: a cgroup, or the sweep by its run id,
as the daemon chose): the agent is spawned into it, and once the agent has exited whatever it
left there is killed, the run's CPU and peak memory read, and the cgroup removed, before the
exit is recorded.

Messages are JSON objects, each framed by a 4-byte big-endian length:

    daemon -> keeper  {"op": "spawn", "run_id", "argv", "env", "cwd", "stdin", "log", "log_cap",
                       "journal", "cgroup", "shared_cgroup", "limits"}
    keeper -> daemon  {"ev": "hello", "pid", "running": [{"run_id", "pid", "create_time"}]}
                      {"ev": "started", "run_id", "pid", "create_time"}
                      {"ev": "exited", "run_id", "ended_at", "exit_code", "error", "cpu_seconds",
                       "peak_memory_bytes", "oom_kills"}
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

if __package__:
    from . import run_container
else:  # run as a script with -I, which leaves this folder off sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run_container

_HEADER = struct.Struct(">I")
_CHUNK = 1 << 16
_SPAWN_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
_IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1,
            signal.SIGUSR2)


class Channel:
    """Length-framed JSON over a non-blocking stream socket, buffered both ways."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._inbox = b""
        self._outbox = b""

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        self._outbox += _HEADER.pack(len(body)) + body
        self.flush()

    @property
    def wants_write(self) -> bool:
        return bool(self._outbox)

    def flush(self) -> None:
        while self._outbox:
            try:
                sent = self.sock.send(self._outbox)
            except BlockingIOError:
                return
            self._outbox = self._outbox[sent:]

    def receive(self) -> tuple[list[dict[str, Any]], bool]:
        """Messages that arrived, and whether the other side has closed."""
        closed = False
        while True:
            try:
                chunk = self.sock.recv(_CHUNK)
            except BlockingIOError:
                break
            except ConnectionError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            self._inbox += chunk
        return list(self._messages()), closed

    def _messages(self) -> Iterator[dict[str, Any]]:
        while len(self._inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._inbox)
            if len(self._inbox) < _HEADER.size + size:
                return
            body = self._inbox[_HEADER.size:_HEADER.size + size]
            self._inbox = self._inbox[_HEADER.size + size:]
            yield json.loads(body)


@functools.cache
def _boot_time() -> int:
    with open("/proc/stat", "rb") as file:
        return next(int(line.split()[1]) for line in file if line.startswith(b"btime"))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_create_time(pid: int) -> float:
    """Start time as psutil computes it: boot time plus the start tick from /proc."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
    finally:
        os.close(fd)
    return _boot_time() + int(fields[19]) / _CLOCK_TICKS


class CappedLog:
    """Appends to a run's log but never lets it pass ``cap`` bytes.

    On overflow the file is cut back to its first half and a marker; the newest output
    follows, so a runaway agent's log keeps both how it started and how it ended.
    """

    MARKER = b"\n[starforge: output over LOG_MAX_BYTES dropped here; the latest output follows]\n"

    def __init__(self, fd: int, cap: int) -> None:
        self.fd = fd
        self._cap = cap
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self._cap:
            head = min(self._size, self._cap // 2)
            os.ftruncate(self.fd, head)
            os.write(self.fd, self.MARKER)
            self._size = head + len(self.MARKER)
            data = data[-(self._cap - self._size):]
        os.write(self.fd, data)
        self._size += len(data)


@dataclass
class _Run:
    run_id: str
    pid: int
    create_time: float
    pidfd: int
    output: int | None
    log: CappedLog
    journal: str
    container: run_container.RunContainer
    cpu_mark: float  # the shared cgroup's CPU seconds before the spawn


def _open_log(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def _append(journal: str, record: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a lost line costs precision at recovery, not the run
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, json.dumps(record, separators=(",", ":")).encode() + b"\n")
        finally:
            os.close(fd)


def _end_container(run: _Run, rusage: Any) -> dict[str, Any]:
    """Kill what the run left, remove its container; what it used, for its exit record."""
    try:
        end = run.container.end(session=run.pid, rusage=rusage, remove=False,
                                cpu_mark=run.cpu_mark)
    except OSError as error:
        run.log.write(f"starforge: cannot end the run's container: {error}\n".encode())
        return {}
    if end.left:
        run.log.write(f"starforge: {len(end.left)} processes of the run outlived its end: "
                      f"{' '.join(map(str, end.left))}\n".encode())
    return {"cpu_seconds": end.usage.cpu_seconds, "peak_memory_bytes": end.usage.peak_memory,
            "oom_kills": end.usage.oom_kills}


class Keeper:
    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._poll = select.poll()
        self._poll.register(listener, select.POLLIN)
        self._client: Channel | None = None
        self._runs: dict[int, _Run] = {}  # by pidfd and by output fd
        self._served = False

    def serve(self) -> None:
        """Until no daemon is connected and no run is left (after the first daemon came)."""
        listener = self._listener.fileno()
        while self._client is not None or self._runs or not self._served:
            self._update_client_interest()
            # a departed daemon's last requests are handled before a new daemon is greeted
            for fd, _ in sorted(self._poll.poll(), key=lambda event: event[0] == listener):
                self._handle(fd)

    def _update_client_interest(self) -> None:
        if self._client is not None:
            mask = select.POLLIN | (select.POLLOUT if self._client.wants_write else 0)
            self._poll.modify(self._client.sock, mask)

    def _handle(self, fd: int) -> None:
        if fd == self._listener.fileno():
            self._accept()
        elif self._client is not None and fd == self._client.sock.fileno():
            self._client.flush()
            self._read_client()
        elif fd in self._runs:
            run = self._runs[fd]
            if fd == run.pidfd:
                self._finish(run)
            else:
                self._pump(run)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._client is not None:  # the previous daemon is gone: act on all it sent first
            self._read_client()
            self._drop_client()
        self._served = True
        self._client = Channel(sock)
        self._poll.register(sock, select.POLLIN)
        running = {id(run): run for run in self._runs.values()}.values()
        self._client.send({"ev": "hello", "pid": os.getpid(), "running": [
            {"run_id": run.run_id, "pid": run.pid, "create_time": run.create_time}
            for run in running]})

    def _read_client(self) -> None:
        assert self._client is not None
        messages, closed = self._client.receive()
        for message in messages:
            if message.get("op") == "spawn":
                self._spawn(message)
        if closed:
            self._drop_client()

    def _drop_client(self) -> None:
        assert self._client is not None
        self._poll.unregister(self._client.sock)
        self._client.sock.close()
        self._client = None

    def _tell(self, message: dict[str, Any]) -> None:
        if self._client is not None:
            try:
                self._client.send(message)
            except OSError:
                self._drop_client()

    def _container(self, request: dict[str, Any]) -> tuple[run_container.RunContainer, list[str]]:
        """The run's container, made; notes on what it lacks (limits not set, no cgroup)."""
        run_id = request["run_id"]
        container = run_container.RunContainer(run_id, request.get("cgroup"),
                                               bool(request.get("shared_cgroup")))
        try:
            return container, container.create(request.get("limits"))
        except OSError as error:  # contained by the sweep instead: still nothing is left
            return (run_container.RunContainer(run_id),
                    [f"cannot make the run's cgroup ({error.strerror}); the sweep contains it"])

    def _spawn(self, request: dict[str, Any]) -> None:
        run_id, journal = request["run_id"], request["journal"]
        container, notes = self._container(request)
        cpu_mark = container.cpu_mark()
        output, agent_output = os.pipe()
        try:
            os.chdir(request["cwd"])
            argv = request["argv"]
            pid = container.spawn(
                argv, request["env"],
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, request.get("stdin") or os.devnull,
                               os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, agent_output, 1),
                              (os.POSIX_SPAWN_DUP2, agent_output, 2)],
                setsid=True, setsigdef=_SPAWN_DEFAULT_SIGNALS, setsigmask=())
        except (OSError, ValueError) as error:
            reason = f"could not start {argv[0]!r}: {getattr(error, 'strerror', None) or error}"
            with contextlib.suppress(OSError):
                log_fd = _open_log(request["log"])
                os.write(log_fd, f"starforge: {reason}\n".encode())
                os.close(log_fd)
            os.close(output)
            os.close(agent_output)
            container.end()
            ended = {"ended_at": time.time(), "exit_code": None, "error": reason}
            _append(journal, {"run_id": run_id, "exit": ended})
            self._tell({"ev": "exited", "run_id": run_id, **ended})
            return
        finally:
            os.chdir("/")
        os.close(agent_output)
        # the agent is running; its output waits in the pipe while its log is created
        log = CappedLog(_open_log(request["log"]), int(request["log_cap"]))
        for note in notes:
            log.write(f"starforge: {note}\n".encode())
        create_time = process_create_time(pid)
        _append(journal, {"run_id": run_id, "started": {"pid": pid, "create_time": create_time}})
        run = _Run(run_id, pid, create_time, os.pidfd_open(pid), output, log, journal, container,
                   cpu_mark)
        self._runs[run.pidfd] = self._runs[output] = run
        self._poll.register(run.pidfd, select.POLLIN)
        self._poll.register(output, select.POLLIN)
        self._tell({"ev": "started", "run_id": run_id, "pid": pid, "create_time": create_time})

    def _pump(self, run: _Run) -> None:
        assert run.output is not None
        chunk = os.read(run.output, _CHUNK)
        if chunk:
            run.log.write(chunk)
        else:
            self._close_output(run)

    def _close_output(self, run: _Run) -> None:
        if run.output is not None:
            self._poll.unregister(run.output)
            del self._runs[run.output]
            os.close(run.output)
            run.output = None

    def _finish(self, run: _Run) -> None:
        """The agent exited: keep what it already wrote, stop what it left behind, record it."""
        _, status, rusage = os.wait4(run.pid, 0)
        ended_at = time.time()
        if run.output is not None:
            os.set_blocking(run.output, False)
            with contextlib.suppress(BlockingIOError):
                for _ in range(64):  # what is buffered now, not what a leftover keeps writing
                    chunk = os.read(run.output, _CHUNK)
                    if not chunk:
                        break
                    run.log.write(chunk)
            self._close_output(run)
        usage = _end_container(run, rusage)
        self._poll.unregister(run.pidfd)
        del self._runs[run.pidfd]
        os.close(run.pidfd)
        os.close(run.log.fd)
        ended = {"ended_at": ended_at, "exit_code": os.waitstatus_to_exitcode(status),
                 "error": None, **usage}
        _append(run.journal, {"run_id": run.run_id, "exit": ended})
        self._tell({"ev": "exited", "run_id": run.run_id, **ended})
        with contextlib.suppress(OSError):  # emptied already; a daemon's start removes it else
            run.container.remove()


def main(socket_path: str) -> None:
    for number in _IGNORED:
        signal.signal(number, signal.SIG_IGN)
    os.chdir("/")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    private = os.umask(0o177)  # only the daemon's user may ask for runs
    try:
        listener.bind(socket_path)
    finally:
        os.umask(private)
    listener.listen(8)
    os.write(1, b"listening\n")
    os.close(1)
    os.open(os.devnull, os.O_WRONLY)
    try:
        Keeper(listener).serve()
    finally:
        # unlink before close: a daemon that finds no socket starts a new keeper, and this
        # one must not remove that keeper's socket
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
        listener.close()


if __name__ == "__main__":
    main(sys.argv[1])
