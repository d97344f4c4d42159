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
                       "journal", "cgroup", "shared_cgroup", "limits", "output"}
    keeper -> daemon  {"ev": "hello", "pid", "running": [{"run_id", "pid", "create_time"}]}
                      {"ev": "started", "run_id", "pid", "create_time"}
                      {"ev": "progress", "run_id", <core.streams.Progress>, "last_event_at",
                       "result_at"}  (runs read as events: at most once a second)
                      {"ev": "exited", "run_id", "ended_at", "exit_code", "error", "cpu_seconds",
                       "peak_memory_bytes", "oom_kills", "stream": <core.streams.Summary>}
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
from dataclasses import dataclass, replace
from typing import Any

if __package__:
    from . import journal_file, run_container, stream_reader
else:  # run as a script with -I, which leaves this folder (and the package's) off sys.path
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, _HERE)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(_HERE))))
    import journal_file
    import run_container
    import stream_reader

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
_SPAWN_CLOCK_SPREAD = 0.02  # seconds; with a tick's rounding, within the 0.05 s tolerance


def process_create_time(pid: int) -> float:
    """Start time as psutil computes it: boot time plus the start tick from /proc."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
    finally:
        os.close(fd)
    return _boot_time() + int(fields[19]) / _CLOCK_TICKS


def spawned_create_time(pid: int, before: float, after: float) -> float:
    """The start time of a child spawned between the ``CLOCK_BOOTTIME`` readings ``before``
    and ``after``, without reading /proc (which cost the keeper a sixth of its time per run):
    the kernel stamps a new process with that clock, in ticks. Where the two readings are far
    apart (a preempted spawn) the identity check's 0.05 s tolerance could be missed, so /proc
    is read then."""
    if after - before > _SPAWN_CLOCK_SPREAD:
        return process_create_time(pid)
    return _boot_time() + int(before * _CLOCK_TICKS) / _CLOCK_TICKS


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
        """Output that the disk refuses (full, read-only) is dropped: the run goes on."""
        with contextlib.suppress(OSError):
            if self._size + len(data) > self._cap:
                head = min(self._size, self._cap // 2)
                os.ftruncate(self.fd, head)
                os.write(self.fd, self.MARKER)
                self._size = head + len(self.MARKER)
                data = data[-(self._cap - self._size):]
            self._size += os.write(self.fd, data)


@dataclass
class _Run:
    run_id: str
    pid: int
    create_time: float
    pidfd: int
    output: int | None
    log: CappedLog
    journal: journal_file.JournalFile
    container: run_container.RunContainer
    cpu_mark: float  # the shared cgroup's CPU seconds before the spawn
    stream: stream_reader.RunStream | None  # its output read as its CLI's events


def _open_log(path: str) -> int:
    """The run's log; ``/dev/null`` when the disk refuses it (the run goes on, unlogged)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o644)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def _keep(run: _Run, chunk: bytes) -> None:
    """A chunk of the run's output: into its log, and to its stream reader."""
    run.log.write(chunk)
    if run.stream is not None:
        run.stream.feed(chunk, time.time())


def _end_container(run: _Run, rusage: Any) -> run_container.RunEnd | None:
    """Kill what the run left, remove its container; None when that failed (said in its log)."""
    try:
        end = run.container.end(session=run.pid, rusage=rusage, remove=False,
                                cpu_mark=run.cpu_mark)
    except OSError as error:
        run.log.write(f"starforge: cannot end the run's container: {error}\n".encode())
        return None
    if end.left:
        run.log.write(f"starforge: {len(end.left)} processes of the run outlived its end: "
                      f"{' '.join(map(str, end.left))}\n".encode())
    return end


class Keeper:
    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._poll = select.poll()
        self._poll.register(listener, select.POLLIN)
        self._client: Channel | None = None
        self._runs: dict[int, _Run] = {}  # by pidfd and by output fd
        self._streams: dict[str, stream_reader.RunStream] = {}  # of the runs read as events
        self._served = False
        self._refused_journals: list[journal_file.JournalFile] = []  # lines wait in them
        self._journal_retry_at = 0.0
        # an agent's shared cgroup, empty now: its files held open and the CPU seconds counted
        self._shared: dict[str | None, tuple[run_container.cgroups.HeldFiles, float]] = {}

    def serve(self) -> None:
        """Until no daemon is connected, no run is left and no journal line waits (after the
        first daemon came)."""
        listener = self._listener.fileno()
        while (self._client is not None or self._runs or not self._served
               or self._refused_journals):
            self._update_client_interest()
            # a departed daemon's last requests are handled before a new daemon is greeted
            waits = [wait for wait in (self._tell_progress(), self._retry_journals())
                     if wait is not None]
            for fd, _ in sorted(self._poll.poll(min(waits, default=None)),
                                key=lambda event: event[0] == listener):
                self._handle(fd)

    def _tell_progress(self) -> int | None:
        """Tell the daemon of the runs whose progress is due; milliseconds until the next."""
        if self._client is None:
            return None
        now, wait = time.monotonic(), None
        for run_id, stream in self._streams.items():
            due = stream.due_in(now)
            if due == 0.0:
                self._tell({"ev": "progress", "run_id": run_id, **stream.progress(now)})
            elif due is not None:
                wait = due if wait is None else min(wait, due)
        return None if wait is None else max(1, int(wait * 1000))

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
        self._forget_shared()  # a new daemon removes the cgroups no run uses
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

    def _container(self, request: dict[str, Any],
                   ) -> tuple[run_container.RunContainer, list[str], float]:
        """The run's container, made; notes on what it lacks (limits not set, no cgroup); the
        CPU seconds its shared cgroup counted before the run."""
        run_id = request["run_id"]
        container = run_container.RunContainer(run_id, request.get("cgroup"),
                                               bool(request.get("shared_cgroup")))
        if container.cgroup in self._shared:  # made, and left empty by its previous run
            held, cpu_mark = self._shared.pop(container.cgroup)
            return replace(container, held=held), [], cpu_mark
        try:
            notes = container.create(request.get("limits"))
            if container.shared:
                container = container.hold()
        except OSError as error:  # contained by the sweep instead: still nothing is left
            return (run_container.RunContainer(run_id),
                    [f"cannot make the run's cgroup ({error.strerror}); the sweep contains it"],
                    0.0)
        return container, notes, container.cpu_mark()

    def _keep_shared(self, container: run_container.RunContainer,
                     end: run_container.RunEnd | None, cpu_mark: float) -> None:
        """Keep an agent's shared cgroup, emptied by its run's ``end``, open for its next run,
        with the CPU seconds it has counted; let it go when the end went wrong."""
        if container.held is None:
            return
        if end is None or end.left or end.usage.cpu_seconds is None:
            container.held.close()
        else:
            self._shared[container.cgroup] = (container.held, cpu_mark + end.usage.cpu_seconds)

    def _journal(self, path: str, record: dict[str, Any]) -> journal_file.JournalFile:
        """A run's journal, with ``record`` appended (or waiting, when the disk refuses it)."""
        journal = journal_file.JournalFile(path)
        journal.append(record)
        if journal.waiting:
            self._refused_journals.append(journal)
        return journal

    def _done_with(self, journal: journal_file.JournalFile) -> None:
        """The run has nothing more to append; what still waits keeps being tried."""
        if journal.waiting and journal not in self._refused_journals:
            self._refused_journals.append(journal)

    def _retry_journals(self) -> int | None:
        """Try the waiting journal lines again (at most every RETRY_INTERVAL); milliseconds
        until the next try, None when nothing waits."""
        if not self._refused_journals:
            return None
        now = time.monotonic()
        if now >= self._journal_retry_at:
            self._journal_retry_at = now + journal_file.RETRY_INTERVAL
            for journal in list(self._refused_journals):
                journal.flush()
                if not journal.waiting:
                    self._refused_journals.remove(journal)
        return max(1, int((self._journal_retry_at - now) * 1000))

    def _forget_shared(self) -> None:
        for held, _ in self._shared.values():
            held.close()
        self._shared.clear()

    def _spawn(self, request: dict[str, Any]) -> None:
        run_id = request["run_id"]
        container, notes, cpu_mark = self._container(request)
        output, agent_output = os.pipe()
        try:
            os.chdir(request["cwd"])
            argv = request["argv"]
            before = time.clock_gettime(time.CLOCK_BOOTTIME)
            pid = container.spawn(
                argv, request["env"],
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, request.get("stdin") or os.devnull,
                               os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, agent_output, 1),
                              (os.POSIX_SPAWN_DUP2, agent_output, 2)],
                setsid=True, setsigdef=_SPAWN_DEFAULT_SIGNALS, setsigmask=())
            after = time.clock_gettime(time.CLOCK_BOOTTIME)
        except (OSError, ValueError) as error:
            reason = f"could not start {argv[0]!r}: {getattr(error, 'strerror', None) or error}"
            with contextlib.suppress(OSError):
                log_fd = _open_log(request["log"])
                os.write(log_fd, f"starforge: {reason}\n".encode())
                os.close(log_fd)
            os.close(output)
            os.close(agent_output)
            try:
                self._keep_shared(container, container.end(cpu_mark=cpu_mark), cpu_mark)
            except OSError:
                self._keep_shared(container, None, cpu_mark)
            ended = {"ended_at": time.time(), "exit_code": None, "error": reason}
            self._done_with(self._journal(request["journal"], {"run_id": run_id, "exit": ended}))
            self._tell({"ev": "exited", "run_id": run_id, **ended})
            return
        finally:
            os.chdir("/")
        os.close(agent_output)
        create_time = spawned_create_time(pid, before, after)
        # the agent is running; its output waits in the pipe while its log is created
        log = CappedLog(_open_log(request["log"]), int(request["log_cap"]))
        for note in notes:
            log.write(f"starforge: {note}\n".encode())
        journal = self._journal(request["journal"],
                                {"run_id": run_id, "started": {"pid": pid, "create_time": create_time}})
        run = _Run(run_id, pid, create_time, os.pidfd_open(pid), output, log, journal, container,
                   cpu_mark, stream_reader.open_stream(request.get("output")))
        self._runs[run.pidfd] = self._runs[output] = run
        if run.stream is not None:
            self._streams[run_id] = run.stream
        self._poll.register(run.pidfd, select.POLLIN)
        self._poll.register(output, select.POLLIN)
        self._tell({"ev": "started", "run_id": run_id, "pid": pid, "create_time": create_time})

    def _pump(self, run: _Run) -> None:
        assert run.output is not None
        chunk = os.read(run.output, _CHUNK)
        if chunk:
            _keep(run, chunk)
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
                    _keep(run, chunk)
            self._close_output(run)
        end = _end_container(run, rusage)
        usage = {} if end is None else {"cpu_seconds": end.usage.cpu_seconds,
                                        "peak_memory_bytes": end.usage.peak_memory,
                                        "oom_kills": end.usage.oom_kills}
        self._keep_shared(run.container, end, run.cpu_mark)
        self._poll.unregister(run.pidfd)
        del self._runs[run.pidfd]
        os.close(run.pidfd)
        os.close(run.log.fd)
        ended = {"ended_at": ended_at, "exit_code": os.waitstatus_to_exitcode(status),
                 "error": None, **usage}
        if run.stream is not None:
            ended["stream"] = run.stream.finish()
            del self._streams[run.run_id]
        run.journal.append({"run_id": run.run_id, "exit": ended})
        self._done_with(run.journal)
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
