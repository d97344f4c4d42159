"""The runs in flight: one state per run, each carrying its own data.

The ledger is the one owner of "agent X is busy" and of a run's process: the queue asks it who
is busy, the slot file is rendered from it, the scheduler reads deadlines off its states.
A run goes launching -> running -> (stopping -> killing) and leaves the ledger when it ends.
A stop asked for before the runner reported the process has no handle yet; the stop is sent
when the process is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from starforge_daemon.core.models import ProcessIdentity, Run
from starforge_daemon.core.streams.reports import LiveProgress

Handle = ProcessIdentity  # what the runner reported for a run: opaque to the engine, which
# shows only its pid (slots, SPAWNED); signals and sessions stay inside runtime/local/


class StopReason(StrEnum):
    TIMEOUT = "timeout"
    NO_OUTPUT = "no_output"  # AGENT_FIRST_OUTPUT_TIMEOUT
    STALLED = "stalled"  # AGENT_STALL_TIMEOUT
    LINGERING = "lingering"  # still running AGENT_RESULT_GRACE after its result
    OVER_BUDGET = "over_budget"
    SHUTDOWN = "shutdown"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Launching:
    """Asked of the runner; no process reported yet."""

    run: Run
    handle: None = None


@dataclass(frozen=True, slots=True)
class Running:
    run: Run
    handle: Handle


@dataclass(frozen=True, slots=True)
class Stopping:
    """Asked to stop at ``since``; killed once the grace period has passed."""

    run: Run
    handle: Handle | None
    reason: StopReason
    since: float


@dataclass(frozen=True, slots=True)
class Killing:
    run: Run
    handle: Handle | None
    reason: StopReason
    since: float


RunState = Launching | Running | Stopping | Killing


def stop_reason(state: RunState) -> StopReason | None:
    return state.reason if isinstance(state, Stopping | Killing) else None


class Ledger:
    """The runs in flight by run id, at most one per agent name."""

    def __init__(self) -> None:
        self._runs: dict[str, RunState] = {}
        self._by_agent: dict[str, str] = {}
        self._live: dict[str, LiveProgress] = {}  # what runs read as events report of themselves
        self.version = 0  # bumped on every change: the slot file is saved when it moved
        self._changed: set[str] = set()  # run ids, since the last take_changed

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[RunState]:
        return iter(list(self._runs.values()))

    def __getitem__(self, run_id: str) -> RunState:
        return self._runs[run_id]

    def get(self, run_id: str) -> RunState | None:
        return self._runs.get(run_id)

    def of_agent(self, agent: str) -> RunState | None:
        run_id = self._by_agent.get(agent)
        return None if run_id is None else self._runs[run_id]

    def is_busy(self, agent: str) -> bool:
        return agent in self._by_agent

    def busy_agents(self) -> dict[str, RunState]:
        return {agent: self._runs[run_id] for agent, run_id in self._by_agent.items()}

    def add(self, state: Launching | Running) -> None:
        """A run launched now, or adopted from an earlier daemon with its process."""
        run = state.run
        if run.agent in self._by_agent:
            raise ValueError(f"agent {run.agent} already has run {self._by_agent[run.agent]}")
        self._put(state)
        self._by_agent[run.agent] = run.run_id

    def started(self, run_id: str, handle: Handle) -> RunState | None:
        """The runner reported the process; a run asked to stop meanwhile keeps stopping."""
        state = self._runs.get(run_id)
        if isinstance(state, Launching | Running):
            state = Running(state.run, handle)
        elif isinstance(state, Stopping):
            state = Stopping(state.run, handle, state.reason, state.since)
        elif isinstance(state, Killing):
            state = Killing(state.run, handle, state.reason, state.since)
        else:
            return None
        self._put(state)
        return state

    def stop(self, run_id: str, reason: StopReason, now: float) -> RunState:
        """Stopping from now; a run already stopping keeps its clock and takes the new reason."""
        state = self._runs[run_id]
        if isinstance(state, Stopping | Killing):
            state = type(state)(state.run, state.handle, reason, state.since)
        else:
            state = Stopping(state.run, state.handle, reason, now)
        self._put(state)
        return state

    def kill(self, run_id: str) -> Killing:
        state = self._runs[run_id]
        assert isinstance(state, Stopping | Killing), "only a stopping run is killed"
        killing = Killing(state.run, state.handle, state.reason, state.since)
        self._put(killing)
        return killing

    def remove(self, run_id: str) -> RunState | None:
        state = self._runs.pop(run_id, None)
        if state is not None:
            del self._by_agent[state.run.agent]
            self._live.pop(run_id, None)
            self._changed.add(run_id)
            self.version += 1
        return state

    def report(self, run_id: str, live: LiveProgress) -> None:
        """The run's latest progress (a run no longer here is ignored)."""
        if run_id in self._runs:
            self._live[run_id] = live
            self._changed.add(run_id)
            self.version += 1

    def live(self, run_id: str) -> LiveProgress | None:
        return self._live.get(run_id)

    def take_changed(self) -> set[str]:
        """The runs added, changed, reported on or removed since the last call (the deadlines
        follow the ledger by it: they have one reader)."""
        changed, self._changed = self._changed, set()
        return changed

    def _put(self, state: RunState) -> None:
        self._runs[state.run.run_id] = state
        self._changed.add(state.run.run_id)
        self.version += 1
