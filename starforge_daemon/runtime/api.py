"""What the engine asks of a backend, in terms of runs: launch one, stop one, reconcile the runs
an earlier daemon left open. How a run is a process (pids, sessions, signals) is the backend's
business (``runtime/local/``); the engine keeps the opaque handle a backend reports.

A backend does not wait on its own: it watches its descriptors through the daemon's reactor
(``Watcher``) and turns their readiness into run events, which the engine takes after each wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from starforge_daemon.core.ledger import Handle
from starforge_daemon.core.models import RunExit
from starforge_daemon.core.streams.reports import LiveProgress


class RunnerError(Exception):
    """The backend could not be reached or started."""


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: Path
    log_cap: int
    journal: Path  # where the backend appends what becomes of the run
    stdin: Path | None = None  # the file the agent reads as stdin; None: /dev/null
    output: str = "text"  # how its output is read: text, or a core.streams adapter's kind
    timeout: float | None = None  # the run's timeout, for a backend's own limit behind it
    after: str | None = None  # start once this run has ended and is emptied (at once if it has)


@dataclass(frozen=True)
class Started:
    run_id: str
    handle: Handle


@dataclass(frozen=True)
class Exited:
    """The run is over; ``exit`` is None when nobody recorded how it ended."""

    run_id: str
    exit: RunExit | None


@dataclass(frozen=True)
class Progressed:
    """What a run whose output is read as events is doing now (at most once a second)."""

    run_id: str
    live: LiveProgress


@dataclass(frozen=True)
class Withdrawn:
    """A run launched ``after`` another was taken back before it started; it never will."""

    run_id: str


RunEvent = Started | Exited | Progressed | Withdrawn


@dataclass(frozen=True)
class Reconciled:
    """What a backend found of the runs an earlier daemon left open: the ones it follows until
    they end, with their handle (the journal's, or its own where the journal has none yet), and
    the runs it held that none of them names (a journal lost their record), stopped: which
    trigger is theirs cannot be told, and their agent's name must be free for its next run."""

    followed: dict[str, Handle]
    unnamed: tuple[str, ...] = ()


class Watcher(Protocol):
    """The reactor's side a backend sees: call ``on_ready`` when ``fd`` is ready."""

    def watch(self, fd: int, on_ready: Callable[[], None], write: bool = False) -> None: ...

    def forget(self, fd: int) -> None: ...


class Runner(Protocol):
    """What the engine needs from a backend; tests pass a scripted fake."""

    @property
    def containment(self) -> str:
        """How the backend keeps a run's processes together, in one line for MODE and status."""
        ...

    @property
    def reachable(self) -> bool:
        """Whether the backend is connected now (the local keeper); health checks ask."""
        ...

    def can_follow(self, run_id: str) -> bool:
        """Whether a run launched ``after`` this one would start the moment it ends."""
        ...

    def connect(self) -> None: ...

    def launch(self, spec: LaunchSpec) -> None: ...

    def withdraw(self, run_id: str) -> None:
        """Take back a run launched ``after`` another if it has not started: ``Withdrawn``
        follows then, else its ``Started`` came first."""
        ...

    def stop(self, run_id: str, force: bool) -> None:
        """Ask the run to stop (``force``: kill it and all it started); one asked for before
        the run is reported started is carried out once it is."""
        ...

    def reconcile(self, open_runs: Mapping[str, Handle | None]) -> Reconciled:
        """Of the runs an earlier daemon left open (with their handle once started), the ones
        this backend follows until they end; the others are over or never began, as their
        journal tells (which the backend may complete first)."""
        ...

    def take_events(self) -> list[RunEvent]: ...
