"""The keeper: the parent of every agent run, so that a run outlives the daemon that asked for it.

The daemon starts one keeper per project (``python3 -I -S keeper.py SOCKET RUNS``: standard
library only, so it starts fast and shares no state; its records are ``NamedTuple``s, because
``dataclasses`` brings ``inspect`` along, 1.3 MB of each keeper's memory) and talks to it over a
Unix stream socket.
The keeper spawns agents in their own sessions and inside their cgroups (``cgroup_spawn``:
``clone3(CLONE_INTO_CGROUP)`` where its extension is built), their stdout and stderr
the run's log itself (``log_follow``: it follows the log, reads a run read as events and caps
it; a log read as text is followed from half a second into its run, and capped at its end),
waits for them and appends what happened to each run's journal (``.claude/daemon/runs/*.jsonl``)
before telling the daemon. When the daemon dies the keeper
carries on; the next daemon connects, learns which runs are still going, and reads the journals
for the ones that ended meanwhile. With no daemon connected and no run left, the keeper exits.
When the keeper itself dies its agents go on writing to their logs, and its parent (``reaper``)
records their exits.

Each run lives in its own container (``run_container``: a cgroup, or the sweep by its run id,
as the daemon chose): the agent is spawned into it, and once the agent has exited whatever it
left there is killed, the run's CPU and peak memory read, and the cgroup removed, before the
exit is recorded.

Messages are JSON objects, each framed by a 4-byte big-endian length:

    daemon -> keeper  {"op": "env", "env"}  (the environment the runs' environments differ from)
                      {"op": "spawn", "run_id", "argv", "env" (what differs), "unset" (names
                       left out), "cwd", "stdin", "log", "log_cap", "journal", "cgroup",
                       "shared_cgroup", "limits", "output", "after" (a run to start behind)}
                      {"op": "withdraw", "run_id"}  (a run waiting behind another, not begun)
    keeper -> daemon  {"ev": "hello", "pid", "ops" (the requests it knows), "running":
                       [{"run_id", "pid", "start"}]}
                      {"ev": "started", "run_id", "pid", "start"}  (start: seconds since boot)
                      {"ev": "progress", "run_id", <core.streams.Progress>, "last_event_at",
                       "result_at"}  (runs read as events: at most once a second)
                      {"ev": "exited", "run_id", "ended_at", "exit_code", "error", "cpu_seconds",
                       "peak_memory_bytes", "oom_kills", "stream": <core.streams.Summary>}
                      {"ev": "withdrawn", "run_id"}

A spawn request with "after" waits until that run (running, or itself waiting) has exited,
then spawns: at once when it goes into another container (that run's container is emptied and
its end recorded after, both ends told in one write, that run's first), else once that run's
cgroup is emptied and its end sent. The next of one-at-a-time runs starts without waiting for
the daemon to hear of the end. Withdrawing a waiting request withdraws the
ones waiting behind it too. Waiting requests are forgotten, never spawned, when the daemon that
sent them leaves (their journals have no "spawning" line: the next daemon queues their
triggers again).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

if __package__:
    from . import journal_file, log_follow, processes, reaper, run_container, stream_reader
else:  # run as a script with -I, which leaves this folder (and the package's) off sys.path
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, _HERE)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(_HERE))))
    import journal_file
    import log_follow
    import processes
    import reaper
    import run_container
    import stream_reader

_HEADER = struct.Struct(">I")
_CHUNK = 1 << 16
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
        self.put(message)
        self.flush()

    def put(self, message: dict[str, Any]) -> None:
        """Buffer ``message`` for the next ``flush``."""
        body = journal_file.COMPACT.encode(message).encode()
        self._outbox += _HEADER.pack(len(body)) + body

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


_SPAWN_CLOCK_SPREAD = 0.02  # seconds; with a tick's rounding, within the 0.05 s tolerance


def spawned_start(pid: int, before: float, after: float) -> float:
    """The start time of a child spawned between the ``CLOCK_BOOTTIME`` readings ``before``
    and ``after``, without reading /proc (which cost the keeper a sixth of its time per run):
    the kernel stamps a new process with that clock, in ticks. Where the two readings are far
    apart (a preempted spawn) the identity check's 0.05 s tolerance could be missed, so /proc
    is read then."""
    if after - before > _SPAWN_CLOCK_SPREAD:
        return processes.process_start(pid)
    ticks = processes.CLOCK_TICKS
    return int(before * ticks) / ticks


class _Run(NamedTuple):
    run_id: str
    pid: int
    start: float  # seconds since boot
    pidfd: int
    log: log_follow.FollowedLog  # with its stream reader, for a run read as its CLI's events
    journal: journal_file.JournalFile
    container: run_container.RunContainer
    cpu_mark: float  # the shared cgroup's CPU seconds before the spawn


def _open_log(path: str) -> int:
    """The run's log; ``/dev/null`` when the disk refuses it (the run goes on, unlogged)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o644)
    except OSError:
        return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def _end_container(run: _Run, rusage: Any) -> run_container.RunEnd | None:
    """Kill what the run left, remove its container; None when that failed (said in its log)."""
    try:
        end = run.container.end(session=run.pid, rusage=rusage, remove=False,
                                cpu_mark=run.cpu_mark)
    except OSError as error:
        run.log.note(f"starforge: cannot end the run's container: {error}\n".encode())
        return None
    if end.left:
        run.log.note(f"starforge: {len(end.left)} processes of the run outlived its end: "
                      f"{' '.join(map(str, end.left))}\n".encode())
    return end


class Keeper:
    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._pid = os.getpid()  # named in each run's spawning line, for this keeper's reaper
        self._poll = select.epoll()  # one wake-up costs the same with 1,000 runs as with one
        self._poll.register(listener, select.EPOLLIN)
        self._client: Channel | None = None
        self._client_env: dict[str, str] = {}  # what its spawn requests' "env" adds to
        self._client_writes = False  # whether poll watches its socket for writing too
        self._runs: dict[int, _Run] = {}  # by pidfd
        self._logs = log_follow.Inotify()
        self._poll.register(self._logs.fd, select.EPOLLIN)
        self._followed: dict[int, _Run] = {}  # by the inotify watch of its log
        # runs read as text, with their log's path: their log is watched a while after the start
        self._follow_later: log_follow.Later[tuple[_Run, str]] = log_follow.Later(
            log_follow.FOLLOW_AFTER, log_follow.FOLLOW_BATCH)
        self._streams: dict[str, stream_reader.RunStream] = {}  # of the runs read as events
        self._on_deck: dict[str, dict[str, Any]] = {}  # spawn requests by the run they follow
        self._served = False
        self._refused_journals: list[journal_file.JournalFile] = []  # lines wait in them
        self._journal_retry_at = 0.0
        # an agent's shared cgroup, empty now: its files held open and the CPU seconds counted
        self._shared: dict[str | None, tuple[run_container.cgroups.HeldFiles, float]] = {}
        self._reset_signals = processes.ignored_signals()  # what an agent must not inherit
        self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # a run's stdin, mostly

    def serve(self) -> None:
        """Until no daemon is connected, no run is left and no journal line waits (after the
        first daemon came)."""
        listener = self._listener.fileno()
        while (self._client is not None or self._runs or not self._served
               or self._refused_journals):
            waits = [wait for wait in (self._tell_progress(), self._retry_journals(),
                                       self._follow_due()) if wait is not None]
            self._flush_client()  # what this turn told, in one write
            self._update_client_interest()
            # the daemon's word before the runs' ends (a run taken back before the end of the
            # one it waited behind); a departed daemon's last requests before a new daemon
            client = -1 if self._client is None else self._client.sock.fileno()
            timeout = min(waits) / 1000 if waits else None
            for fd, _ in sorted(self._poll.poll(timeout),
                                key=lambda event: (event[0] == listener, event[0] != client)):
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
        """Ask poll for the daemon's socket turning writable only while a reply waits (a
        change of interest, not every turn: that would be a syscall per turn)."""
        if self._client is not None and self._client.wants_write != self._client_writes:
            self._client_writes = self._client.wants_write
            mask = select.EPOLLIN | (select.EPOLLOUT if self._client_writes else 0)
            self._poll.modify(self._client.sock, mask)

    def _handle(self, fd: int) -> None:
        if fd == self._listener.fileno():
            self._accept()
        elif self._client is not None and fd == self._client.sock.fileno():
            self._client.flush()
            self._read_client()
        elif fd == self._logs.fd:
            self._catch_up_logs()
        elif fd in self._runs:
            self._finish(self._runs[fd])

    def _catch_up_logs(self) -> None:
        wall = time.time()
        for wd in self._logs.modified():
            if wd in self._followed:
                self._followed[wd].log.catch_up(wall)

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
        self._client_env = {}
        self._poll.register(sock, select.EPOLLIN)
        self._client_writes = False
        running = [{"run_id": run.run_id, "pid": run.pid, "start": run.start}
                   for run in self._runs.values()]
        self._client.send({"ev": "hello", "pid": self._pid,
                           "ops": ["spawn", "env", "after", "withdraw"], "running": running})

    def _read_client(self) -> None:
        assert self._client is not None
        messages, closed = self._client.receive()
        for message in messages:
            if message.get("op") == "spawn":
                self._spawn_or_wait(message)
            elif message.get("op") == "env":
                self._client_env = message["env"]
            elif message.get("op") == "withdraw":
                self._withdraw(message["run_id"])
        if closed:
            self._drop_client()

    def _drop_client(self) -> None:
        """Let the daemon go (once: a failed write may have let it go already)."""
        if self._client is None:
            return
        self._poll.unregister(self._client.sock)
        self._client.sock.close()
        self._client = None
        self._on_deck.clear()

    def _tell(self, message: dict[str, Any]) -> None:
        if self._client is not None:
            self._client.put(message)

    def _flush_client(self) -> None:
        if self._client is not None:
            try:
                self._client.flush()
            except OSError:
                self._drop_client()

    def _container(self, request: dict[str, Any],
                   ) -> tuple[run_container.RunContainer, list[str], float]:
        """The run's container, made; notes on what it lacks (limits not set, no cgroup); the
        CPU seconds its shared cgroup counted before the run."""
        run_id, cgroup, shared = request["run_id"], request.get("cgroup"), bool(
            request.get("shared_cgroup"))
        if cgroup in self._shared:  # made, and left empty by its previous run
            held, cpu_mark = self._shared.pop(cgroup)
            return run_container.RunContainer(run_id, cgroup, shared, held), [], cpu_mark
        container = run_container.RunContainer(run_id, cgroup, shared)
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
        elif end.killed:  # made again for the next run: clone3 into a killed cgroup fails
            container.held.close()
            with contextlib.suppress(OSError):  # still busy: the next run enters by migration
                os.rmdir(container.cgroup)
        else:
            self._shared[container.cgroup] = (container.held, cpu_mark + end.usage.cpu_seconds)

    def _journal(self, path: str, record: dict[str, Any]) -> journal_file.JournalFile:
        """A run's journal, with ``record`` appended (or waiting, when the disk refuses it)."""
        journal = journal_file.JournalFile(path)
        self._append(journal, record)
        return journal

    def _append(self, journal: journal_file.JournalFile, record: dict[str, Any]) -> None:
        """Append ``record`` to a run's journal; what the disk refuses keeps being tried."""
        journal.append(record)
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

    def _spawn_or_wait(self, request: dict[str, Any]) -> None:
        after = request.get("after")
        if after is not None and any(run_id == after for run_id in (
                *(waiting["run_id"] for waiting in self._on_deck.values()),
                *(run.run_id for run in self._runs.values()))):
            self._on_deck[after] = request
        else:
            self._start(request)

    def _withdraw(self, run_id: str) -> None:
        """Take back a request waiting behind another run, and the ones waiting behind it; a
        run spawned already stays."""
        for after, request in list(self._on_deck.items()):
            if request["run_id"] == run_id:
                del self._on_deck[after]
                self._tell({"ev": "withdrawn", "run_id": run_id})
                if run_id in self._on_deck:
                    self._withdraw(self._on_deck[run_id]["run_id"])

    def _behind(self, run_id: str) -> dict[str, Any] | None:
        """The request waiting behind ``run_id``, taken off deck; None when there is none or
        its daemon is gone (it is then never spawned)."""
        waiting = self._on_deck.pop(run_id, None)
        return None if self._client is None else waiting

    def _start(self, request: dict[str, Any], told: dict[str, Any] | None = None,
               after_cgroup: str | None = None) -> None:
        """Spawn ``request``'s run (unless ``told`` says how its spawn went already) and tell
        that, after what was told. A run that could not start hands on to the one behind it.

        A run joining the cgroup of the run it follows (``after_cgroup``) is spawned only once
        that run's end is sent: a daemon that finds this keeper dead empties the cgroup of a
        run it thinks is still going."""
        while True:
            if told is None:
                if after_cgroup is not None and request.get("cgroup") == after_cgroup:
                    self._flush_client()
                told = self._spawn(request)
            self._tell(told)
            behind = None if told["ev"] == "started" else self._behind(request["run_id"])
            if behind is None:
                return
            request, told, after_cgroup = behind, None, request.get("cgroup")

    def _spawn(self, request: dict[str, Any]) -> dict[str, Any]:
        """Spawn the run; what to tell of it: that it started, or (its end journalled) that it
        could not start."""
        run_id = request["run_id"]
        container, notes, cpu_mark = self._container(request)
        log_fd = _open_log(request["log"])
        # the keeper's notes go before the agent's first write, which the log follows from
        log = log_follow.FollowedLog(log_fd, int(request["log_cap"]),
                                     stream_reader.open_stream(request.get("output")), notes)
        # first: a run without this line was never spawned, and may be asked for again
        journal = self._journal(request["journal"], {
            "run_id": run_id, "spawning": time.clock_gettime(time.CLOCK_BOOTTIME),
            "keeper": self._pid})
        try:
            os.chdir(request["cwd"])
            argv = request["argv"]
            before = time.clock_gettime(time.CLOCK_BOOTTIME)
            pid = container.spawn(
                argv, self._environment(request),
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, request["stdin"], os.O_RDONLY, 0)
                              if request.get("stdin") else (os.POSIX_SPAWN_DUP2, self._null, 0),
                              (os.POSIX_SPAWN_DUP2, log_fd, 1),
                              (os.POSIX_SPAWN_DUP2, log_fd, 2)],
                setsid=True, setsigdef=self._reset_signals, setsigmask=())
            after = time.clock_gettime(time.CLOCK_BOOTTIME)
        except (OSError, ValueError) as error:
            reason = f"could not start {argv[0]!r}: {getattr(error, 'strerror', None) or error}"
            with contextlib.suppress(OSError):
                os.write(log_fd, f"starforge: {reason}\n".encode())
            os.close(log_fd)
            try:
                self._keep_shared(container, container.end(cpu_mark=cpu_mark), cpu_mark)
            except OSError:
                self._keep_shared(container, None, cpu_mark)
            ended = {"ended_at": time.time(), "exit_code": None, "error": reason}
            self._append(journal, {"run_id": run_id, "exit": ended})
            return {"ev": "exited", "run_id": run_id, **ended}
        finally:
            os.chdir("/")
        start = spawned_start(pid, before, after)
        self._append(journal, {"run_id": run_id, "started": {"pid": pid, "start": start}})
        run = _Run(run_id, pid, start, os.pidfd_open(pid), log, journal, container,
                   cpu_mark)
        self._runs[run.pidfd] = run
        if log.stream is not None:
            self._follow(run, request["log"])
            self._streams[run_id] = log.stream
        else:
            self._follow_later.add((run, request["log"]), time.monotonic())
        self._poll.register(run.pidfd, select.EPOLLIN)
        return {"ev": "started", "run_id": run_id, "pid": pid, "start": start}

    def _environment(self, request: dict[str, Any]) -> dict[str, str]:
        """A run's environment: the daemon's, as it differs for this run."""
        env = {**self._client_env, **request["env"]}
        for name in request.get("unset", ()):
            env.pop(name, None)
        return env

    def _follow_due(self) -> int | None:
        """Watch the logs of the runs read as text that are due (and still going), cut back to
        the cap what they wrote until then; milliseconds until the next is due."""
        now = time.monotonic()
        for run, path in self._follow_later.due(now):
            if self._runs.get(run.pidfd) is run:
                self._follow(run, path)
                run.log.catch_up(time.time())
        wait = self._follow_later.wait(now)
        return None if wait is None else max(1, int(wait * 1000))

    def _follow(self, run: _Run, path: str) -> None:
        """Watch the run's log for its agent's writes; one not followed (the disk refused it,
        or no watch is left) is read and capped at the run's end only."""
        if not stat.S_ISREG(os.fstat(run.log.fd).st_mode):  # /dev/null: nothing to follow
            return
        try:
            run.log.wd = self._logs.watch(path)
        except OSError as error:
            run.log.note(f"starforge: the log is read at the run's end only: {error}\n".encode())
            return
        self._followed[run.log.wd] = run

    def _finish(self, run: _Run) -> None:
        """The agent exited: start the run behind it, keep what it already wrote, stop what it
        left behind, record it.

        The run behind in another container starts first, its spawn not waiting for this
        run's bookkeeping (this run stays a zombie meanwhile: should this keeper die, its
        status goes to ``reaper``)."""
        behind = self._behind(run.run_id)
        cgroup = run.container.cgroup
        told = None
        if behind is not None and (cgroup is None or behind.get("cgroup") != cgroup):
            told = self._spawn(behind)
        # the status goes to the journal before the agent is reaped: should this keeper die
        # in between, the zombie goes to ``reaper`` (the full record, with what the run used,
        # follows once its container is emptied)
        code = reaper.exit_code(os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOWAIT))
        ended_at = time.time()
        self._append(run.journal, {"run_id": run.run_id, "exit": {
            "ended_at": ended_at, "exit_code": code, "error": None}})
        rusage = os.wait4(run.pid, 0)[2]
        run.log.catch_up(ended_at)  # what it wrote, not what a leftover writes from now on
        if run.log.wd is not None:
            self._logs.forget(run.log.wd)
            del self._followed[run.log.wd]
            self._catch_up_logs()  # and the forgetting's own event, read now, not in a turn
        end = _end_container(run, rusage)
        usage = {} if end is None else {"cpu_seconds": end.usage.cpu_seconds,
                                        "peak_memory_bytes": end.usage.peak_memory,
                                        "oom_kills": end.usage.oom_kills}
        self._keep_shared(run.container, end, run.cpu_mark)
        run.log.close()
        ended = {"ended_at": ended_at, "exit_code": code, "error": None, **usage}
        if run.log.stream is not None:
            ended["stream"] = run.log.stream.finish()
            del self._streams[run.run_id]
        self._append(run.journal, {"run_id": run.run_id, "exit": ended})
        self._tell({"ev": "exited", "run_id": run.run_id, **ended})  # before the run behind's
        if behind is not None:
            self._start(behind, told, cgroup)
        self._poll.unregister(run.pidfd)
        del self._runs[run.pidfd]
        os.close(run.pidfd)
        with contextlib.suppress(OSError):  # emptied already; a daemon's start removes it else
            run.container.remove()


def main(socket_path: str, runs: str) -> None:
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
    subreaper = reaper.become_subreaper()
    forked_at = time.clock_gettime(time.CLOCK_BOOTTIME)
    keeper_pid = os.fork() if subreaper else 0
    if keeper_pid:  # this process waits above the keeper, for the agents it may leave
        listener.close()
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.close(quiet)
        reaper.Reaper(keeper_pid, runs, forked_at).serve()
        return
    try:
        try:
            os.write(1, b"listening\n")
        except BrokenPipeError:  # the daemon that started it died before it heard: no one asks
            return
        os.close(1)
        os.open(os.devnull, os.O_WRONLY)
        Keeper(listener).serve()
    finally:
        # unlink before close: a daemon that finds no socket starts a new keeper, and this
        # one must not remove that keeper's socket
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
        listener.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
