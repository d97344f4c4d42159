"""Running the engine as a service: the instance lock, pid file, signals, event log, systemd
notifications, and detaching into the background with python-daemon."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starforge_daemon.core.agent_cli import root_bypass_refusal
from starforge_daemon.core.events import (
    Crashed,
    DaemonStarted,
    LimitUnavailable,
    Publisher,
    Ready,
    Stopped,
)
from starforge_daemon.daemon.backend_gate import dispatch_gauge
from starforge_daemon.daemon.engine import Engine, StopMode
from starforge_daemon.daemon.logfile import EventLog, EventLogFile
from starforge_daemon.daemon.logupkeep import LogPolicy, LogUpkeep
from starforge_daemon.daemon.observers.counters import CountersObserver
from starforge_daemon.daemon.observers.delivery import NotifySetupError
from starforge_daemon.daemon.observers.eventlog import EventLogObserver
from starforge_daemon.daemon.observers.notify import install_notifications
from starforge_daemon.daemon.persistence import Stores
from starforge_daemon.daemon.reactor import Reactor
from starforge_daemon.daemon.schedule_timer import install_schedules
from starforge_daemon.intake.watcher import TriggerWatcher
from starforge_daemon.runtime.api import RunnerError
from starforge_daemon.runtime.backends import build_runner
from starforge_daemon.runtime.local.client import ProcessRunner
from starforge_daemon.store.atomic import write_atomic
from starforge_daemon.store.control_socket import ControlServer
from starforge_daemon.store.instance import InstanceLock, read_pid
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.setting_kinds import is_loopback_host, split_address
from starforge_daemon.store.settings import Settings, WorktreeMode, dotenv_extras
from starforge_daemon.workspaces.base import SharedCheckout, Workspaces
from starforge_daemon.workspaces.worktrees import GitWorktrees, WorktreeSetupError

if TYPE_CHECKING:
    from starforge_daemon.runtime.slurm.runner import SlurmRunner

READY_TIMEOUT = 120.0
DAEMON_ONLY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class StartError(Exception):
    """The daemon could not start; the message says why."""


def systemd_notify(message: str) -> None:
    """The sd_notify protocol: one datagram to ``$NOTIFY_SOCKET``; nothing without it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
          contextlib.suppress(OSError)):
        sock.sendto(message.encode(), address)


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WatchdogSec=``; None when it is off.

    ``WATCHDOG_PID`` names the process systemd watches; a child that inherited it must not ping.
    """
    if environ.get("WATCHDOG_PID", str(pid)) != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


def watchdog_ping(_now: float) -> None:
    systemd_notify("WATCHDOG=1")


def _install_signal_handlers(engine: Engine, reactor: Reactor) -> None:
    def request(mode: StopMode) -> Callable[[int, object], None]:
        def handler(_number: int, _frame: object) -> None:
            engine.stop_request = engine.stop_request or mode

        return handler

    signal.signal(signal.SIGTERM, request(StopMode.STOP))
    signal.signal(signal.SIGINT, request(StopMode.STOP))
    signal.signal(signal.SIGUSR1, request(StopMode.HANDOFF))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.set_wakeup_fd(reactor.wake_fd, warn_on_full_buffer=False)


def _schedule_upkeep(engine: Engine, settings: Settings, paths: ProjectPaths,
                     sink: EventLogFile, log: Any, pid: int) -> LogUpkeep:
    """Periodic work on the loop: systemd watchdog pings, log upkeep, following log rotation."""
    ping_every = watchdog_interval(os.environ, pid)
    if ping_every is not None:  # from the loop's thread: a stuck loop misses its pings
        engine.upkeep.every(ping_every, watchdog_ping)
    upkeep = LogUpkeep(paths.logs, LogPolicy(
        max_bytes_per_agent=settings.LOG_MAX_BYTES,
        retention_seconds=settings.LOG_RETENTION_DAYS * 86400,
        compress_after_seconds=settings.LOG_COMPRESS_AFTER_HOURS * 3600), log)

    def tidy_agent_logs(now: float) -> None:
        upkeep.start_pass(now, engine.logs_in_use)

    engine.upkeep.every(settings.PROCESS_MONITOR_INTERVAL, tidy_agent_logs)
    engine.upkeep.every(settings.PROCESS_MONITOR_INTERVAL, sink.reopen_if_moved)
    return upkeep


def build_workspaces(paths: ProjectPaths, settings: Settings) -> Workspaces:
    """Where runs work (``WORKTREE_MODE``); a project where that cannot work stops the start."""
    if settings.WORKTREE_MODE is WorktreeMode.OFF:
        return SharedCheckout(paths.root)
    try:
        return GitWorktrees.open(paths, settings)
    except WorktreeSetupError as error:
        raise StartError(str(error)) from None


def run_base_environment(paths: ProjectPaths) -> dict[str, str]:
    """What every run inherits: ``.env`` under the real environment, without what is meant for
    the daemon alone (systemd's notify socket and watchdog)."""
    environment = {**dotenv_extras(paths), **os.environ}
    return {key: value for key, value in environment.items() if key not in DAEMON_ONLY_VARIABLES}


def build_engine(paths: ProjectPaths, settings: Settings, workspaces: Workspaces,
                 events: Publisher, reactor: Reactor,
                 ) -> tuple[Engine, ProcessRunner | SlurmRunner, list[str]]:
    """The engine with the real seams: keeper runner, stores, memory gauge, wall clock; and
    the notes the operator must see at start (limits this host cannot enforce)."""
    try:
        runner, notes = build_runner(paths, settings, reactor)
    except RunnerError as error:  # RUNNER=slurm and no controller answers
        raise StartError(str(error)) from None
    for note in notes:
        events.publish(LimitUnavailable(note))
    engine = Engine(settings, paths, reactor=reactor, runner=runner, stores=Stores.open(paths),
                    workspaces=workspaces, gauge=dispatch_gauge(settings, runner),
                    clock=time.time, events=events, base_env=run_base_environment(paths),
                    on_stopping=lambda: systemd_notify("STOPPING=1"))
    return engine, runner, notes


def require_agent_program(paths: ProjectPaths, settings: Settings) -> None:
    """Refuse to start a daemon whose every run would fail to start its program."""
    problem = settings.agent_program_problem or root_bypass_refusal(
        settings.command_words, os.geteuid(), run_base_environment(paths).get("IS_SANDBOX"))
    if problem:
        raise StartError(problem)


def require_local_metrics(settings: Settings) -> None:
    """Refuse metrics on an address other machines reach, unless METRICS_ALLOW_REMOTE."""
    address = settings.METRICS_ADDRESS
    if address and not (settings.METRICS_ALLOW_REMOTE
                        or is_loopback_host(split_address(address)[0])):
        raise StartError(f"METRICS_ADDRESS={address} is not a loopback address, so other "
                         "machines could read the metrics: use 127.0.0.1:PORT, or set "
                         "METRICS_ALLOW_REMOTE=true")


def serve(paths: ProjectPaths, settings: Settings, on_ready: Callable[[int, list[str]], None],
          echo: bool = False) -> StopMode | None:
    """Run the daemon in this process until it is told to stop; returns how it stopped.
    ``on_ready`` gets the daemon's pid and the notes for the operator."""
    require_agent_program(paths, settings)
    require_local_metrics(settings)
    workspaces = build_workspaces(paths, settings)
    paths.ensure()
    lock = InstanceLock(paths.lock_file)
    if not lock.acquire():
        holder = read_pid(paths)
        raise StartError(f"already running (pid {holder})" if holder else "already running")
    sink = EventLogFile(paths.daemon_log, settings.DAEMON_LOG_MAX_BYTES, echo=sys.stderr if echo else None)
    log = EventLog(sink)
    events = Publisher()
    events.subscribe(EventLogObserver(log))
    reactor = Reactor()
    engine, runner, notes = build_engine(paths, settings, workspaces, events, reactor)
    events.subscribe(CountersObserver(engine.saved.count))
    metrics = None
    try:  # a refused start leaves nothing behind: no server, no project cgroup
        if settings.METRICS_ADDRESS:  # prometheus_client is loaded only when asked for
            from starforge_daemon.daemon.metrics_server import serve_metrics

            metrics = serve_metrics(settings.METRICS_ADDRESS, engine, runner, events)
        notifications = install_notifications(paths, settings, engine, run_base_environment(paths))
    except BaseException as error:
        if metrics is not None:
            metrics.close()
        runner.close()
        if isinstance(error, NotifySetupError):
            raise StartError(str(error)) from None
        raise
    watcher = TriggerWatcher(paths.triggers, engine.inbox.put, engine.inbox.request_scan)
    reactor.watch(watcher.fd, watcher.read)
    control = ControlServer(paths.control_socket, engine.submit)
    _install_signal_handlers(engine, reactor)
    pid = os.getpid()
    upkeep = _schedule_upkeep(engine, settings, paths, sink, log, pid)
    install_schedules(engine)
    write_atomic(paths.pid_file, f"{pid}\n".encode())  # 0644 whatever the umask
    events.publish(DaemonStarted(pid, str(paths.root)))

    def ready() -> None:
        systemd_notify(f"READY=1\nMAINPID={pid}\nSTATUS=draining {paths.triggers}")
        events.publish(Ready(pid, len(engine.queue), len(engine.ledger)))
        on_ready(pid, notes)

    try:
        control.start()
        engine.run(ready)
        events.publish(Stopped(engine.stop_mode.value if engine.stop_mode else None))
        return engine.stop_mode
    except Exception:
        events.publish(Crashed(traceback.format_exc()))
        raise
    finally:
        if metrics is not None:
            metrics.close()
        if notifications is not None:
            notifications.close(engine)
        control.stop()
        reactor.forget(watcher.fd)
        watcher.close()
        upkeep.join(timeout=10)
        if read_pid(paths) == pid:
            paths.pid_file.unlink(missing_ok=True)
        runner.close()
        reactor.close()
        lock.release()
        sink.close()


@dataclass(frozen=True)
class Launched:
    pid: int
    notes: list[str]  # for the operator: limits this host cannot enforce


def start_in_background(paths: ProjectPaths, settings: Settings) -> Launched:
    """Detach a daemon (python-daemon) and return once it is ready.

    The daemon reports over a pipe: ``note TEXT`` lines, then ``ready PID`` or ``error
    REASON``, then closes it; raises StartError.
    """
    import daemon  # only the starting client needs it

    require_agent_program(paths, settings)  # said here, before anything detaches
    require_local_metrics(settings)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_fd)
        status = 1
        try:
            with daemon.DaemonContext(working_directory=str(paths.root), umask=0o022,
                                      files_preserve=[write_fd], detach_process=True):
                status = _serve_and_report(paths, settings, write_fd)
        finally:
            os._exit(status)
    os.close(write_fd)
    os.waitpid(child, 0)
    try:
        reply = _read_reply(read_fd, READY_TIMEOUT)
    finally:
        os.close(read_fd)
    *notes, last = [line.partition(" ") for line in reply.splitlines()] or [("", "", "")]
    word, _, rest = last
    if word == "ready":
        return Launched(int(rest), [text for kind, _, text in notes if kind == "note"])
    raise StartError(rest or "the daemon exited before it was ready (see .claude/logs/daemon.log)")


def _serve_and_report(paths: ProjectPaths, settings: Settings, report_fd: int) -> int:
    unsent = [report_fd]

    def report(text: str, notes: Sequence[str] = ()) -> None:
        """Say the outcome (after the notes) to the waiting client, then let go of the pipe."""
        while unsent:
            fd = unsent.pop()
            lines = [f"note {note}" for note in notes] + [text]
            with contextlib.suppress(OSError):
                os.write(fd, "".join(f"{line}\n" for line in lines).encode())
            os.close(fd)

    try:
        serve(paths, settings, on_ready=lambda pid, notes: report(f"ready {pid}", notes))
    except StartError as error:
        report(f"error {error}")
        return 1
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        report(f"error {error.strerror or error}{where}")
        return 1
    except Exception as error:
        report(f"error the daemon failed while starting: {error} (see {paths.daemon_log})")
        return 1
    return 0


def _read_reply(fd: int, timeout: float) -> str:
    """All the daemon wrote before it let go of the pipe (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error the daemon did not report ready in time"
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
