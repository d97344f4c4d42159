"""The local backend: the daemon's side of running agents as processes on this machine, the
only module that starts, signals or waits for them.

Agents are spawned by the project's keeper (``keeper.py``), which stays their parent across
daemon restarts; this module connects to it (starting it when none runs), asks it for runs and
turns its reports into run events. Runs the keeper cannot report on (it died) are watched
directly through a pidfd; the keeper's parent, a child subreaper, records their exit status in
their journal, where this module reads it (``orphans``).

Every run has a container (``containment``): the keeper spawns the agent into it and empties it
when the agent exits; this module signals it to stop a run, and empties the containers of runs
the keeper could not see to their end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import ProcessIdentity, RunExit
from starforge_daemon.core.runids import parse_run_id
from starforge_daemon.core.streams.reports import LiveProgress
from starforge_daemon.runtime.api import (
    Exited,
    LaunchSpec,
    Progressed,
    Reconciled,
    RunEvent,
    RunnerError,
    Started,
    Watcher,
    Withdrawn,
)
from starforge_daemon.runtime.local import containment, keeper, keeper_start, orphans
from starforge_daemon.runtime.local.identities import is_alive, reported_agent, session_of
from starforge_daemon.runtime.local.run_container import RunContainer
from starforge_daemon.runtime.local.spawn_request import spawn_request


class ProcessRunner:
    """Talks to the keeper and watches runs through the daemon's reactor.

    ``stop`` sends ``stop_signal`` (SIGKILL with ``force``) to every process in the run's
    container, at once or as soon as the keeper reports the run started.
    """

    def __init__(self, socket_path: Path, keeper_log: Path, runs: Path, reactor: Watcher, *,
                 contained: containment.Containment, limits: Mapping[str, str],
                 stop_signal: signal.Signals) -> None:
        self._socket_path = socket_path
        self._keeper_log = keeper_log
        self._runs = runs
        self._reactor = reactor
        self._contained = contained
        self._limits = dict(limits)
        self._stop_signal = stop_signal
        self._channel: keeper.Channel | None = None
        self._keeper: list[int] = []  # its pid and its reaper's, once connected
        self._keeper_env: Mapping[str, str] | None = None  # the environment the keeper holds
        self._keeper_ops: frozenset[str] = frozenset()  # the requests it knows
        self._keeper_process: subprocess.Popen[bytes] | None = None
        self._inflight: dict[str, ProcessIdentity | None] = {}  # runs the keeper holds
        self._outputs: dict[str, orphans.Output] = {}  # of the runs launched here, till done
        self._asked: dict[str, LaunchSpec] = {}  # launched, not reported started yet
        self._watched: dict[str, tuple[ProcessIdentity, int]] = {}  # run -> agent, pidfd
        self._stops: dict[str, bool] = {}  # run -> force, for runs asked to stop
        self.keeper_runs: dict[str, ProcessIdentity] = {}  # what the keeper held when we came
        self._reconciled: set[str] = set()  # the runs an earlier daemon left open
        self._events: list[RunEvent] = []

    @property
    def containment(self) -> str:
        """How runs are contained, in one line (for MODE and ``status``)."""
        return self._contained.text

    def can_follow(self, run_id: str) -> bool:
        """The keeper holds the run and starts one behind it (a keeper from an earlier
        version, which outlives the daemon, may not); one watched from here, its keeper dead,
        cannot be followed."""
        return "after" in self._keeper_ops and run_id in self._inflight

    @property
    def reachable(self) -> bool:
        """Connected to the keeper; after it died, the next launch starts a new one."""
        return self._channel is not None

    def _container(self, run_id: str) -> RunContainer:
        parsed = parse_run_id(run_id)
        return self._contained.run(run_id, parsed.agent if parsed else None)

    # -- the keeper --------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the keeper (started if none listens, again for KEEPER_START_TIMEOUT); its hello."""
        deadline = time.monotonic() + keeper_start.KEEPER_START_TIMEOUT
        while time.monotonic() < deadline:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(str(self._socket_path))
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                self._keeper_process = keeper_start.start_keeper(self._socket_path,
                                                                 self._keeper_log, self._runs)
                continue
            channel = keeper.Channel(sock)
            messages = keeper_start.await_hello(channel)
            if not messages:  # it was just exiting; the next try starts a fresh one
                sock.close()
                continue
            hello, *early = messages
            self._channel = channel
            self._keeper = keeper_start.keeper_processes(hello["pid"])
            self._keeper_ops = frozenset(hello.get("ops", ()))
            # a keeper started by an earlier version (it outlives the daemon) may not know "env"
            self._keeper_env = None if "env" in self._keeper_ops else {}
            self._take(early)
            self._watch_keeper()
            self.keeper_runs = {run["run_id"]: reported_agent(run) for run in hello["running"]}
            return
        raise RunnerError(f"cannot reach the keeper at {self._socket_path}")

    def _watch_keeper(self) -> None:
        """Watch the keeper's socket, for writing too while a request waits to be sent."""
        assert self._channel is not None
        self._reactor.watch(self._channel.sock.fileno(), self._from_keeper,
                            write=self._channel.wants_write)

    def _keeper_lost(self) -> None:
        """The keeper died: watch its agents directly (they outlive it), including the ones it
        spawned but had not reported yet; ask a new keeper for the runs it never began."""
        assert self._channel is not None
        self._reactor.forget(self._channel.sock.fileno())
        self._channel.sock.close()
        self._channel = None
        if self._keeper_process is not None:
            self._keeper_process.poll()
        inflight, self._inflight = self._inflight, {}
        never_spawned = []
        for run_id, agent in inflight.items():
            if agent is None:  # not reported yet: the journal tells whether it was spawned
                spawn = orphans.journalled_spawn(self._runs, run_id)
                if not spawn.begun and run_id in self._asked:
                    never_spawned.append(self._asked[run_id])
                    continue
                if spawn.ended is not None:  # it ran, and ended already
                    self._empty(run_id, None)
                    self._ended(run_id, orphans.with_account(spawn.ended,
                                                             self._outputs.get(run_id)))
                    continue
                agent = spawn.agent
                if agent is not None:
                    self._events.append(Started(run_id, agent))
            if agent is None or not self._watch(run_id, agent):
                self._watched_ended(run_id, agent)
        for spec in never_spawned:  # asked again, of a new keeper
            try:
                self.launch(spec)
            except RunnerError:
                self._ended(spec.run_id, None)

    # -- runs --------------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> None:
        """Ask the keeper for the run (a new one if it died since its last word); it appends
        to ``spec.journal`` what becomes of it."""
        try:
            if not self._follows_held(spec):
                return
            self._ask(spec)
        except OSError:  # the keeper died since its last word (it never read this request)
            self._keeper_lost()
            if not self._follows_held(spec):
                return
            self._ask(spec)
        self._inflight[spec.run_id] = None
        self._outputs[spec.run_id] = orphans.Output(spec.log_path, spec.output)
        self._asked[spec.run_id] = spec
        self._watch_keeper()

    def _follows_held(self, spec: LaunchSpec) -> bool:
        """False, and the run withdrawn, for a run to start behind one this keeper does not
        hold (it died, and the run is watched from here): started now, it would not wait."""
        if spec.after is None or spec.after in self._inflight:
            return True
        self._events.append(Withdrawn(spec.run_id))
        return False

    def withdraw(self, run_id: str) -> None:
        if self._channel is not None:
            with contextlib.suppress(OSError):  # a dead keeper: its loss withdraws the run
                self._channel.send({"op": "withdraw", "run_id": run_id})
            self._watch_keeper()

    def _ask(self, spec: LaunchSpec) -> None:
        """Send the spawn request; its environment as it differs from the one the keeper holds
        for this connection (sent with the first request: most of it is the same each time)."""
        channel = self._connected()
        if self._keeper_env is None:
            channel.send({"op": "env", "env": spec.env})
            self._keeper_env = spec.env
        channel.send(spawn_request(spec, self._keeper_env, self._container(spec.run_id),
                                   self._limits))

    def _connected(self) -> keeper.Channel:
        if self._channel is None:
            self.connect()
        assert self._channel is not None
        return self._channel

    def reconcile(self, open_runs: Mapping[str, ProcessIdentity | None]) -> Reconciled:
        """Follow the runs an earlier daemon started that the keeper holds (journalled or not)
        or that still live (``orphans.journalled_spawn`` finds one a dead keeper began); empty
        the containers of the others; stop the keeper's runs that no journal names."""
        followed: dict[str, ProcessIdentity] = {}
        for run_id, agent in open_runs.items():
            held = self.keeper_runs.get(run_id)
            spawn = None if held or agent else orphans.journalled_spawn(self._runs, run_id)
            agent = held or agent or (spawn.agent if spawn else None)
            if held is not None:
                self._inflight[run_id] = held
            if agent is not None and (held is not None or self._watch(run_id, agent)):
                followed[run_id] = agent
            elif spawn is None or spawn.begun:  # one never spawned left nothing (its agent's
                self._empty(run_id, agent)  # cgroup may hold the run it was handed behind)
        unnamed = tuple(sorted(set(self.keeper_runs) - set(open_runs)))
        for run_id in unnamed:  # its end, which the keeper tells, no run awaits
            self._inflight[run_id] = self.keeper_runs[run_id]
            self.stop(run_id, force=True)
        self._remove_stale(set(followed) | set(self.keeper_runs))
        self._reconciled = set(open_runs) | set(unnamed)
        return Reconciled(followed, unnamed)

    def _remove_stale(self, in_flight: set[str]) -> None:
        """Kill and remove the project's cgroups that no run in ``in_flight`` uses."""
        in_use = {os.path.basename(cgroup) for run_id in in_flight
                  if (cgroup := self._container(run_id).cgroup) is not None}
        with contextlib.suppress(OSError):
            containment.remove_stale(self._contained, in_use)

    def _empty(self, run_id: str, agent: ProcessIdentity | None) -> None:
        """Kill what is left of a run nobody else will end, and remove its container."""
        session = session_of(agent) if agent is not None else None
        with contextlib.suppress(OSError):
            self._container(run_id).end(session=session)

    def _watch(self, run_id: str, agent: ProcessIdentity) -> bool:
        """Watch a run's agent through a pidfd; False when it is certainly over."""
        if not is_alive(agent):
            return False
        try:
            pidfd = os.pidfd_open(agent.pid)
        except ProcessLookupError:
            return False
        self._watched[run_id] = (agent, pidfd)
        self._reactor.watch(pidfd, lambda: self._watched_ended(run_id, agent))
        return True

    def _watched_ended(self, run_id: str, agent: ProcessIdentity | None) -> None:
        """A run the keeper did not see to its end is over: its exit as the kernel or the
        keeper's reaper knows it (None when nobody does); its container emptied here."""
        if run_id in self._watched:
            _agent, pidfd = self._watched[run_id]
            self._reactor.forget(pidfd)
            os.close(pidfd)
        ended = None if agent is None else orphans.orphan_exit(
            self._runs, run_id, agent, self._outputs.get(run_id))
        self._empty(run_id, agent)
        self._ended(run_id, ended)

    def _agent_of(self, run_id: str) -> ProcessIdentity | None:
        watched = self._watched.get(run_id)
        return watched[0] if watched else self._inflight.get(run_id)

    def stop(self, run_id: str, force: bool) -> None:
        self._stops[run_id] = force
        agent = self._agent_of(run_id)
        if agent is not None:  # else sent once the keeper reports the process
            with contextlib.suppress(OSError):
                self._container(run_id).signal(signal.SIGKILL if force else self._stop_signal,
                                               session=session_of(agent))

    def take_events(self) -> list[RunEvent]:
        events, self._events = self._events, []
        return events

    def _from_keeper(self) -> None:
        assert self._channel is not None
        with contextlib.suppress(OSError):  # a dead keeper: its socket reads as closed
            self._channel.flush()
        messages, closed = self._channel.receive()
        self._take(messages)
        if closed:
            self._keeper_lost()
        else:
            self._watch_keeper()

    def _take(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            run_id = message["run_id"]
            if message["ev"] == "started":
                agent = reported_agent(message)
                self._inflight[run_id] = agent
                self._asked.pop(run_id, None)
                self._events.append(Started(run_id, agent))
                if run_id in self._stops:
                    self.stop(run_id, self._stops[run_id])
            elif message["ev"] == "exited":
                self._ended(run_id, RunExit.from_dict(message))
            elif message["ev"] == "withdrawn":
                self._forget(run_id)
                self._events.append(Withdrawn(run_id))
            elif message["ev"] == "progress" and (live := LiveProgress.from_dict(message)):
                self._events.append(Progressed(run_id, live))

    def _ended(self, run_id: str, ended: RunExit | None) -> None:
        self._forget(run_id)
        self._events.append(Exited(run_id, ended))

    def _forget(self, run_id: str) -> None:
        self._inflight.pop(run_id, None)
        self._watched.pop(run_id, None)
        self._stops.pop(run_id, None)
        self._outputs.pop(run_id, None)
        self._asked.pop(run_id, None)

    def close(self) -> None:
        """Let go of the keeper (it exits once its runs are over) and of our descriptors; with
        no run left, remove the project's cgroup folder too, and see the keeper gone: a stopped
        daemon leaves no process behind."""
        busy = self._inflight or self._watched or set(self.keeper_runs) - self._reconciled
        if not busy and self._contained.project is not None:
            self._remove_stale(set())
            with contextlib.suppress(OSError):
                os.rmdir(self._contained.project)
        if self._channel is not None:
            self._reactor.forget(self._channel.sock.fileno())
            self._channel.sock.close()
            if not busy:
                keeper_start.wait_gone(self._keeper, keeper_start.KEEPER_EXIT_WAIT)
        for _agent, pidfd in self._watched.values():
            self._reactor.forget(pidfd)
            os.close(pidfd)
        self._watched = {}
