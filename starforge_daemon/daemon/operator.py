"""Operator requests from the control socket: pause, resume, stop-agent, cancel, and health
(answered from the loop, so an answer shows the loop turns; ``status --check`` asks it).
Health changes nothing, so it is answered at once; the others may wait for the loop (runs
handed over to start next are taken back first).

The socket's thread only queues a request and wakes the loop; the loop serves it between
events, so the queue and the ledger keep one writer.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starforge_daemon.core.events import Cancelled, Paused, Publisher, Resumed, StopRequested
from starforge_daemon.core.ledger import Ledger, StopReason
from starforge_daemon.core.models import OutcomeKind
from starforge_daemon.daemon.admission import Admission
from starforge_daemon.daemon.archivist import Archivist
from starforge_daemon.daemon.persistence import Persistence
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.atomic import read_json_object, write_json_atomic
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.control_socket import Reply
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import NoRun

Request = tuple[dict[str, Any], Reply]
Answer = dict[str, Any]
Handlers = dict[str, Callable[[dict[str, Any], float], Answer]]
READ_ONLY = frozenset({"health"})


class Operator:
    def __init__(self, paths: ProjectPaths, admission: Admission, ledger: Ledger,
                 archivist: Archivist, attempts: Attempts, saved: Persistence, events: Publisher,
                 wake: Callable[[], None],
                 terminate: Callable[[str, StopReason, float], None], runner: Runner) -> None:
        self.paths = paths
        self.admission = admission
        self.queue = admission.queue
        self.ledger = ledger
        self.archivist = archivist
        self.attempts = attempts
        self.saved = saved
        self.events = events
        self._wake = wake
        self._terminate = terminate
        self._runner = runner
        self.requests: queue.SimpleQueue[Request] = queue.SimpleQueue()  # they change things
        self.reads: queue.SimpleQueue[Request] = queue.SimpleQueue()

    def submit(self, request: dict[str, Any], reply: Reply) -> None:
        """Thread-safe: queue an operator request; ``reply`` is called from the loop."""
        (self.reads if request.get("op") in READ_ONLY else self.requests).put((request, reply))
        self._wake()

    @property
    def pending(self) -> bool:
        """A request that changes something waits."""
        return not self.requests.empty()

    def serve(self, now: float, changes: bool = True) -> None:
        """Answer the waiting requests; the ones that change something only with ``changes``."""
        handlers: Handlers = {
            "pause": lambda request, _now: self._set_pause(request, True),
            "resume": lambda request, _now: self._set_pause(request, False),
            "stop-agent": self._stop_agent, "cancel": self._cancel,
            "health": lambda _request, _now: {"ok": True, "keeper": self._runner.reachable}}
        for requests in (self.reads, self.requests) if changes else (self.reads,):
            self._answer(requests, handlers, now)

    @staticmethod
    def _answer(requests: queue.SimpleQueue[Request], handlers: Handlers, now: float) -> None:
        while not requests.empty():
            request, reply = requests.get_nowait()
            handler = handlers.get(str(request.get("op")))
            try:
                answer = handler(request, now) if handler else {
                    "ok": False, "error": f"unknown request {request.get('op')!r}"}
            except KeyError as error:
                answer = {"ok": False, "error": f"the request lacks {error}"}
            except (TypeError, ValueError, OSError) as error:
                answer = {"ok": False, "error": str(error)}
            reply(answer)

    def restore_pauses(self) -> None:
        """Pauses outlive the daemon: take them back from ``paused.json`` at start."""
        paused = read_json_object(self.paths.paused_file)
        if paused.get("all"):
            self.queue.pause(None)
        for agent in paused.get("agents", []):
            self.queue.pause(str(agent))

    def _set_pause(self, request: dict[str, Any], paused: bool) -> Answer:
        agent = request.get("agent") or None
        (self.queue.pause if paused else self.queue.resume)(agent)
        write_json_atomic(self.paths.paused_file, self.queue.pauses)
        self.saved.changed()
        self.events.publish((Paused if paused else Resumed)(agent or "all"))
        return {"ok": True, "paused": self.queue.pauses}

    def _stop_agent(self, request: dict[str, Any], now: float) -> Answer:
        agent = request["agent"]
        state = self.ledger.of_agent(agent)
        if state is None:
            return {"ok": False, "error": f"agent {agent} has no run going"}
        self._terminate(state.run.run_id, StopReason.OPERATOR, now)
        self.events.publish(StopRequested(agent, state.run.run_id))
        return {"ok": True, "run_id": state.run.run_id, "trigger": state.run.trigger_name}

    def _cancel(self, request: dict[str, Any], now: float) -> Answer:
        name = Path(str(request["trigger"])).name
        entry = self.admission.withdraw(name)
        if entry is None:
            return {"ok": False, "error": f"{name} is not waiting in the queue"}
        result = NoRun(name, OutcomeKind.CANCELLED, "cancelled by the operator", entry.id)
        folder = self.paths.running if entry.claimed else self.paths.triggers
        archived = self.archivist.put(folder / name, name, result.to_dict(), now)
        self.attempts.remove(name)
        self.events.publish(Cancelled(name, str(archived)))
        return {"ok": True, "archived": str(archived)}
