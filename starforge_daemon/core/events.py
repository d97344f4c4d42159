"""What the daemon tells its observers: one typed event per fact, published once.

The engine and its helpers publish; observers (the text event log first, later metrics,
notifications, a dashboard feed) subscribe. Field order is the order the event log prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starforge_daemon.core.dependency_events import DependencyEvent
from starforge_daemon.core.schedule_events import ScheduleEvent


@dataclass(frozen=True, slots=True)
class DaemonStarted:
    pid: int
    project: str


@dataclass(frozen=True, slots=True)
class Mode:
    msg: str
    agent: str
    timeout: float


@dataclass(frozen=True, slots=True)
class Contained:
    """How runs are contained on this host: a cgroup each, or the sweep by run id."""

    msg: str


@dataclass(frozen=True, slots=True)
class LimitUnavailable:
    """A run limit the settings ask for that this host cannot enforce."""

    msg: str


@dataclass(frozen=True, slots=True)
class Ready:
    pid: int
    queued: int
    running: int


@dataclass(frozen=True, slots=True)
class StateDamaged:
    """A file the daemon shows about itself was unreadable at start; it is rebuilt."""

    msg: str


@dataclass(frozen=True, slots=True)
class RecoveryNote:
    msg: str


@dataclass(frozen=True, slots=True)
class Requeued:
    """Claimed by an earlier daemon but never started: back in the queue."""

    trigger: str


@dataclass(frozen=True, slots=True)
class MayHaveRun:
    """Left in flight by an earlier daemon, with no evidence of whether its run started:
    archived to ``failed/`` rather than run again (at most once), for the operator to retry."""

    trigger: str
    reason: str
    run: str | None


@dataclass(frozen=True, slots=True)
class Adopted:
    agent: str
    run: str
    pid: int


@dataclass(frozen=True, slots=True)
class Recovered:
    """A run that ended while no daemon ran, finished now."""

    agent: str
    run: str
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class Queued:
    trigger: str
    agent: str
    queued: int


@dataclass(frozen=True, slots=True)
class EventsLost:
    """The kernel's queue of trigger-folder events overflowed: the folder is scanned instead."""


@dataclass(frozen=True, slots=True)
class Vanished:
    """The trigger was gone when its turn came."""

    trigger: str


@dataclass(frozen=True, slots=True)
class Rejected:
    trigger: str
    reason: str


@dataclass(frozen=True, slots=True)
class Held:
    """No new runs for now: memory is short, the files refuse writes, a rate limit bit or the
    day's budget is spent."""

    reason: str
    queued: int
    kind: str  # a core.holds.HoldKind: memory, disk, rate_limit, budget


@dataclass(frozen=True, slots=True)
class HoldLifted:
    pass


@dataclass(frozen=True, slots=True)
class Spawned:
    agent: str
    ticket: str | None
    pid: int
    run: str
    trigger: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Past its timeout: asked to stop."""

    agent: str
    run: str
    timeout: float
    stop_signal: str  # AGENT_STOP_SIGNAL


@dataclass(frozen=True, slots=True)
class Watched:
    """A watchdog of the run's output, or its budget, asked it to stop."""

    agent: str
    run: str
    reason: str  # the StopReason: no_output, stalled, lingering, over_budget
    msg: str


@dataclass(frozen=True, slots=True)
class KillEscalated:
    """Still running after the grace period: killed."""

    agent: str
    run: str


@dataclass(frozen=True, slots=True)
class WorkspaceReleased:
    agent: str
    run: str
    msg: str


@dataclass(frozen=True, slots=True)
class Finished:
    agent: str
    ticket: str | None
    outcome: str
    exit_code: int | None
    reason: str | None
    run: str
    attempt: int
    duration_s: float
    start_failed: bool  # the run could not even start
    trigger: str | None = None
    # the run's own account, when its output gave one (metrics count them)
    model: str | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    log: str | None = None  # the run's log file
    retry_at: str | None = None  # when the trigger is tried again; None: it is archived
    dead_letter: bool = False  # archived in failed/ after the last of its retries


@dataclass(frozen=True, slots=True)
class StillRunning:
    """A run going for longer than ``NOTIFY_PROGRESS_EVERY``, said that often."""

    agent: str
    ticket: str | None
    run: str
    elapsed_s: float
    tool: str | None  # what its CLI reported doing last
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class Archived:
    """A finished run's trigger is in its archive, its result file beside it."""

    agent: str
    run: str
    outcome: str
    trigger: str  # where it is now


@dataclass(frozen=True, slots=True)
class Drained:
    """The last run ended with nothing queued: the daemon is idle."""


@dataclass(frozen=True, slots=True)
class NotifyFailed:
    """A notification URL or ``ON_FINISH_COMMAND`` failed; said once until it works again."""

    target: str
    error: str


@dataclass(frozen=True, slots=True)
class NotifyWorks:
    """A notification target that failed works again."""

    target: str


@dataclass(frozen=True, slots=True)
class Retried:
    trigger: str
    agent: str
    attempt: int
    of: int
    retry_at: str


@dataclass(frozen=True, slots=True)
class Paused:
    agent: str  # "all" for the whole queue


@dataclass(frozen=True, slots=True)
class Resumed:
    agent: str


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The operator stopped an agent's run."""

    agent: str
    run: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    trigger: str
    archived: str


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    mode: str
    running: int
    queued: int
    handoff: bool  # agents are left running for the next daemon


@dataclass(frozen=True, slots=True)
class Stopped:
    mode: str | None


@dataclass(frozen=True, slots=True)
class Crashed:
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Something failed that the daemon survives (a file it could not write...)."""

    msg: str
    trigger: str | None = None
    task: str | None = None
    error: str


Event = (DaemonStarted | Mode | Contained | LimitUnavailable | Ready | StateDamaged
         | RecoveryNote | Requeued | MayHaveRun | Adopted
         | Recovered | Queued | EventsLost | Vanished | Rejected | Held | HoldLifted | Spawned | TimedOut
         | Watched | KillEscalated | WorkspaceReleased | Finished | Retried | Paused | Resumed
         | StopRequested | Cancelled | ShuttingDown | Stopped | Crashed | Problem
         | StillRunning | Archived | Drained | NotifyFailed | NotifyWorks | ScheduleEvent
         | DependencyEvent)
Observer = Callable[[Event], None]


class Publisher:
    """Hands each event to every observer in turn, on the publishing thread.

    Observers must be quick: the engine's loop waits for them. One that may block (HTTP, a slow
    disk) gets its own thread and a bounded queue, and subscribes only the queue's put.
    """

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def publish(self, event: Event) -> None:
        for observer in self._observers:
            observer(event)
